// cxx shim over the simulated device: converts between the shared vocabulary (src/ffi/vocab.rs)
// and the plain C++ in sim_device.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "rust/cxx.h"
#include "sim_device.hpp"

namespace memguard {
struct AllocRequest;
struct AllocOutcome;
struct AllocRecord;
struct PoolSnapshot;
}  // namespace memguard

namespace memguard::ffi {

struct SimGeometry;

class SimDevice {
public:
    explicit SimDevice(const sim::Geometry& geometry) : device_(geometry) {}

    AllocOutcome allocate(const AllocRequest& request, rust::Str label);
    bool deallocate(std::uint32_t slot, std::uint64_t id);
    PoolSnapshot snapshot() const;
    PoolSnapshot scan_snapshot() const;
    rust::Vec<AllocRecord> live() const;
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
