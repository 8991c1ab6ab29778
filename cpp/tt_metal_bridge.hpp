// cxx shim over the TT-Metal device handle: converts between the shared vocabulary
// (src/ffi/vocab.rs), the bridge's own types (src/ffi/tt_metal.rs) and the plain C++ in
// tt_metal_device.hpp. Built only with the `tt-metal` feature.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "rust/cxx.h"
#include "tt_metal_device.hpp"

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

struct TtOpenOptions;
struct TtFacts;
struct TtForeignEvent;
struct TtBankGeometry;
struct TtBankOp;
struct TtBankStep;

class TtMetalHandle {
public:
    explicit TtMetalHandle(std::unique_ptr<ttm::MeshHandle> handle) : handle_(std::move(handle)) {}

    TtFacts facts() const;
    AllocOutcome allocate(const AllocRequest& request, rust::Str label);
    bool deallocate(std::uint32_t slot, std::uint64_t id);
    PoolSnapshot snapshot() const;
    rust::Vec<AllocRecord> live() const;
    std::uint64_t live_count() const;
    std::uint64_t next_id() const;
    std::uint32_t mark_peak();
    PeakReading read_peak(std::uint32_t mark) const;
    void release_peak(std::uint32_t mark);
    std::size_t mesh_device() const;
    std::uint64_t create_program();
    CbCheck add_circular_buffer(std::uint64_t program, rust::Slice<const CoreBox> ranges, std::uint64_t size,
                                rust::Slice<const std::uint8_t> indices);
    EnqueueOutcome enqueue_program(std::uint64_t program);
    rust::Vec<std::uint64_t> program_addresses(std::uint64_t program) const;
    bool destroy_program(std::uint64_t program);
    void start_journal();
    void stop_journal();
    rust::Vec<TtForeignEvent> drain_journal();

private:
    std::unique_ptr<ttm::MeshHandle> handle_;
};

std::unique_ptr<TtMetalHandle> tt_open(const TtOpenOptions& options);
std::unique_ptr<TtMetalHandle> tt_adopt_mesh_device(std::size_t address);
std::unique_ptr<TtMetalHandle> tt_adopt_idevice(std::size_t address);
rust::Vec<TtBankStep> tt_l1_bank_replay(const TtBankGeometry& geometry, std::uint64_t limit,
                                        rust::Slice<const TtBankOp> ops);

}  // namespace memguard::ffi
