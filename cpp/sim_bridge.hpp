// cxx shim over the simulated device: converts between the bridge's shared
// types and the plain C++ in sim_device.hpp.
#pragma once

#include <cstdint>
#include <memory>

#include "rust/cxx.h"
#include "sim_device.hpp"

namespace memguard::ffi {

struct SimGeometry;
struct RawPool;
struct RawSnapshot;
struct RawRequest;
struct RawRecord;
struct RawOutcome;

class SimDevice {
public:
    explicit SimDevice(const sim::Geometry& geometry) : device_(geometry) {}

    RawOutcome allocate(const RawRequest& request, rust::Str label);
    bool deallocate(std::uint32_t slot, std::uint64_t id);
    RawSnapshot snapshot() const;
    RawSnapshot scan_snapshot() const;
    rust::Vec<RawRecord> live() const;
    std::uint64_t live_count() const;
    std::uint64_t next_id() const;
    bool reset();
    std::uint32_t mark_peak();
    std::array<std::uint64_t, 4> read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);

private:
    sim::Device device_;
};

std::unique_ptr<SimDevice> new_sim_device(const SimGeometry& geometry);

}  // namespace memguard::ffi
