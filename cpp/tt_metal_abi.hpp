// How the shim calls TT-Metal, whichever form tt_metal_api.hpp compiles (this project's pinned
// declarations or the user's own headers): the few calls that differ between the two forms, the
// check that the loaded libtt_metal.so is the one the pinned declarations were checked against,
// the mapping between tt-memguard's pools and TT-Metal's buffer types, and the translation of
// TT-Metal's exceptions into Failure.
//
// Plain C++17 (C++20 with the user's headers); no cxx types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "tt_metal_api.hpp"
#include "vocab.hpp"

namespace memguard::ttm {

namespace metal = tt::tt_metal;
namespace dist = tt::tt_metal::distributed;

// Every TT-Metal exception leaves the shim as a Failure whose what() is TT-Metal's message
// without its backtrace.
class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// TT-Metal's message without the TT_FATAL header and the backtrace.
std::string clean_message(const char* what);

// Runs a TT-Metal call; whatever it throws leaves as a Failure with a clean message.
template <class F>
auto guarded(F&& call) -> decltype(call()) {
    try {
        return call();
    } catch (const Failure&) {
        throw;
    } catch (const std::exception& e) {
        throw Failure(clean_message(e.what()));
    } catch (...) {
        throw Failure("TT-Metal threw an exception that is not a std::exception");
    }
}

// `value` rounded up to a multiple of `multiple`, as TT-Metal's allocator rounds; saturates at
// 2^64 - 1 (requests are validated on the Rust side so that it never does).
inline std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) {
    if (multiple == 0) return value;
    const std::uint64_t rem = value % multiple;
    if (rem == 0) return value;
    const std::uint64_t pad = multiple - rem;
    return value > UINT64_MAX - pad ? UINT64_MAX : value + pad;
}

// TT-Metal's buffer type for a pool; throws Failure for a value that names no pool.
metal::BufferType metal_type(Pool pool);
// The pool of a TT-Metal buffer type; nothing for SYSTEM_MEMORY.
std::optional<Pool> pool_of(metal::BufferType type);

namespace api {

// Opens one chip as a 1x1 mesh with the default dispatch and no L1 bank remap.
std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size);

// Opens a mesh of `rows` x `cols` chips (0 x 0: the whole system's mesh, in its own shape) with
// the default dispatch and no L1 bank remap: one allocator places every mesh buffer on all chips.
std::shared_ptr<dist::MeshDevice> create_mesh(std::uint32_t rows, std::uint32_t cols, std::size_t l1_small_size,
                                              std::size_t trace_region_size, std::size_t num_command_queues,
                                              std::size_t worker_l1_size);

// The address of the complete object an IDevice* or MeshDevice* belongs to: equal for the
// IDevice that buffers report and the MeshDevice that owns them.
const void* identity(const metal::IDevice* device);
const void* identity(const dist::MeshDevice* mesh);

// The MeshDevice an IDevice* is, or nullptr when it is another kind of device.
dist::MeshDevice* as_mesh_device(metal::IDevice* device);

// Checks that the loaded libtt_metal.so is the one the declarations were written for; returns an
// empty string when it is (or when the user's own headers are used), else what is wrong.
std::string check_library();

// Height sharding over `grid`: `pages` pages of 32x32, `pages_per_shard` per core.
metal::BufferShardingArgs height_sharded(metal::CoreRangeSet grid, std::uint32_t pages_per_shard,
                                         std::uint32_t pages);

// A circular buffer of `total_size` bytes serving `indices` (one page of the whole size each: the
// page size plays no part in the layout or the checks) on `ranges`, added to `program`. Throws
// Failure with TT-Metal's message.
void create_circular_buffer(metal::Program& program, const std::vector<metal::CoreRange>& ranges,
                            std::uint32_t total_size, const std::vector<std::uint8_t>& indices);

// TT-Metal's id of a program (a process-wide counter).
std::uint64_t program_id(const metal::Program& program);

// A workload holding `program` on every device of `mesh`. Throws Failure.
std::unique_ptr<dist::MeshWorkload> make_workload(metal::Program&& program, dist::MeshDevice* mesh);

// The compile step of EnqueueMeshWorkload: lays the CBs out at the first call, then validates
// them. Throws what TT-Metal throws (not translated: the caller classifies it).
void compile(dist::MeshWorkload& workload, dist::MeshDevice* mesh);

}  // namespace api
}  // namespace memguard::ttm
