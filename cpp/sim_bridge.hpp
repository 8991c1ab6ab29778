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
struct CoreBox;
struct CbCheck;
struct EnqueueOutcome;
struct PeakReading;
}  // namespace memguard

namespace memguard::ffi {

struct SimGeometry;
struct CbBacking;

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
    PeakReading read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);
    std::uint64_t create_program();
    CbCheck add_circular_buffer(std::uint64_t program, rust::Slice<const CoreBox> ranges, std::uint64_t size,
                                rust::Slice<const std::uint8_t> indices, const CbBacking& backing);
    EnqueueOutcome enqueue_program(std::uint64_t program);
    rust::Vec<std::uint64_t> program_addresses(std::uint64_t program) const;
    bool destroy_program(std::uint64_t program);

private:
    sim::Device device_;
};

std::unique_ptr<SimDevice> new_sim_device(const SimGeometry& geometry);

}  // namespace memguard::ffi
