// The part of TT-Metal's C++ API that tt-memguard uses, in one of two forms:
//
//  * MEMGUARD_TT_METAL_HEADERS defined (build.rs: TT_METAL_HOME is set): the user's own
//    TT-Metal headers are included (tt_metal_abi.* calls them the same way).
//  * otherwise: this project's own minimal declarations, pinned to the libtt_metal.so of the
//    PyPI wheel ttnn==0.81.1 (GNU build-id below). They were written from what the binary
//    exports (nm -D) and how it uses its arguments (objdump); no TT-Metal header is included
//    or copied. Only what a memory checker needs is declared.
//
// Rules of the declarations:
//  * Objects the library owns (MeshDevice, MeshBuffer, Buffer, Allocator, GraphTracker) have
//    no data members here and only non-virtual, out-of-line member functions: every call binds
//    to an exported symbol (the linker checks each signature) and never depends on their layout.
//    They are only handled through pointers and shared_ptrs made inside the library.
//  * Types the caller builds and passes in (configs, shard specs, core ranges) have their exact
//    x86-64 / libstdc++ layout, pinned by the static_asserts at the end.
//  * IGraphProcessor has the library's 15-slot vtable; its key function end_capture() is
//    declared and not defined, so the library's own vtable and typeinfo are used.
//  * x86-64 Linux, libstdc++ with the cxx11 string ABI, C++17, GCC or Clang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#if defined(MEMGUARD_TT_METAL_HEADERS)

#include <tt-metalium/allocator.hpp>
#include <tt-metalium/buffer.hpp>
#include <tt-metalium/experimental/mock_device.hpp>
#include <tt-metalium/graph_tracking.hpp>
#include <tt-metalium/mesh_buffer.hpp>
#include <tt-metalium/mesh_device.hpp>
#include <tt-metalium/system_mesh.hpp>

#else  // our declarations

#include <array>
#include <map>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

namespace ttsl {

// ttsl::StrongType<T, Tag>: one T, trivially copyable (passed by value in a register).
template <typename T, typename Tag>
class StrongType {
public:
    constexpr explicit StrongType(T value) : value_(value) {}

private:
    T value_;
};

}  // namespace ttsl

namespace tt {

// tt::ARCH (UMD); only the values used here.
enum class ARCH : int { WORMHOLE_B0 = 2, BLACKHOLE = 3, QUASAR = 4 };

// tt::xy_pair (CoreCoord): two size_t.
struct xy_pair {
    std::size_t x;
    std::size_t y;
};

// tt::DataFormat: one byte; only the value used here.
enum class DataFormat : std::uint8_t { Float16_b = 5 };

namespace tt_metal {

using DeviceAddr = std::uint64_t;

enum class BufferType : int { DRAM = 0, L1 = 1, SYSTEM_MEMORY = 2, L1_SMALL = 3, TRACE = 4 };
enum class TensorMemoryLayout : int { INTERLEAVED = 0, HEIGHT_SHARDED = 2, WIDTH_SHARDED = 3, BLOCK_SHARDED = 4 };
enum class ShardOrientation : int { ROW_MAJOR = 0, COL_MAJOR = 1 };
enum class HalMemType : std::uint8_t { L1 = 0, DRAM = 1, HOST = 2 };

class IDevice;  // opaque; polymorphic in the library

namespace detail {
// Owned by the library; the Program below holds a shared_ptr to it.
class ProgramImpl {
public:
    ProgramImpl() = delete;
    std::uint64_t get_id() const;  // exported; a process-wide counter
};
}  // namespace detail

// 16 bytes: one shared_ptr<detail::ProgramImpl> (its pointer first). Special members exported.
class Program {
public:
    Program();
    Program(Program&& other);
    Program& operator=(Program&& other);
    ~Program();
    detail::ProgramImpl* impl_ptr() const { return impl_; }

private:
    detail::ProgramImpl* impl_;
    void* control_;
};

Program CreateProgram();  // exported

struct CoreRange {
    CoreRange(const xy_pair& start, const xy_pair& end);  // exported
    xy_pair start_coord;
    xy_pair end_coord;
};

class CoreRangeSet {
public:
    explicit CoreRangeSet(const CoreRange& range);          // exported
    explicit CoreRangeSet(std::vector<CoreRange>&& ranges);  // exported; merges and validates
    CoreRangeSet(const CoreRangeSet& other);                 // exported
    CoreRangeSet(CoreRangeSet&& other);                      // exported
    ~CoreRangeSet() = default;                               // the library's is inline too
    std::uint32_t num_cores() const;                         // exported

private:
    std::vector<CoreRange> ranges_;
};

// What CreateCircularBuffer takes its cores as (40 bytes, built by the caller).
using CoreSpec = std::variant<xy_pair, CoreRange, CoreRangeSet>;

// 4,432 bytes built on the caller's side; the library exports its constructors and setters but
// no destructor or copy. Its only members that own memory are three std::unordered_set<uint8_t>
// of buffer indices, at the offsets in memguard::ttm::pinned (found in the 0.81.1 binary and
// self-tested at run time): the shim destroys exactly those (tt_metal_abi.cpp).
class CircularBufferConfig {
public:
    CircularBufferConfig(std::uint32_t total_size, const std::map<std::uint8_t, tt::DataFormat>& formats);
    CircularBufferConfig& set_page_size(std::uint8_t index, std::uint32_t page_size);
    CircularBufferConfig(const CircularBufferConfig&) = delete;
    CircularBufferConfig& operator=(const CircularBufferConfig&) = delete;

private:
    alignas(8) unsigned char bytes_[4432];
};

std::uintptr_t CreateCircularBuffer(Program& program, const CoreSpec& cores, const CircularBufferConfig& config);

// Inline in the library, so built here. CoreRangeSet's user-provided copy constructor keeps both
// non-trivially copyable, which the library's by-value parameters require.
struct ShardSpec {
    CoreRangeSet grid;
    std::array<std::uint32_t, 2> shape;
    ShardOrientation orientation = ShardOrientation::ROW_MAJOR;
};

struct ShardSpecBuffer {
    ShardSpec tensor_shard_spec;
    std::array<std::uint32_t, 2> page_shape;
    std::array<std::uint32_t, 2> tensor2d_shape_in_pages;
};

// A one-pointer pimpl whose special members are all exported.
class BufferShardingArgs {
public:
    BufferShardingArgs();
    BufferShardingArgs(ShardSpecBuffer shard_spec, TensorMemoryLayout layout);
    BufferShardingArgs(const BufferShardingArgs& other);
    BufferShardingArgs(BufferShardingArgs&& other);
    BufferShardingArgs& operator=(const BufferShardingArgs& other);
    BufferShardingArgs& operator=(BufferShardingArgs&& other);
    ~BufferShardingArgs();

private:
    void* impl_;
};

// Allocator::get_statistics: four per-bank figures (32 bytes at 0.81.1).
struct Statistics {
    std::size_t total_allocatable_size_bytes;
    std::size_t total_allocated_bytes;
    std::size_t total_free_bytes;
    std::size_t largest_free_block_bytes;
};

class Buffer {
public:
    Buffer() = delete;
    std::uint32_t address() const;  // throws when not allocated
    DeviceAddr size() const;
    BufferType buffer_type() const;
    DeviceAddr page_size() const;
    DeviceAddr aligned_size_per_bank() const;
    bool is_allocated() const;
    std::size_t unique_id() const;
    IDevice* device() const;
};

class Allocator {
public:
    Allocator() = delete;
    std::uint32_t get_num_banks(const BufferType& type) const;
    DeviceAddr get_bank_size(const BufferType& type) const;
    std::uint32_t get_alignment(BufferType type) const;
    DeviceAddr get_base_allocator_addr(const HalMemType& mem_type) const;
    Statistics get_statistics(const BufferType& type) const;
};

struct AllocatorIDTag;

// The allocator of one pool (all its banks in lock-step), as a device's allocator builds it; used
// only to reproduce what the allocator does with an interleaved L1 limit above the pool's base,
// which no device of this release configures (tt_metal_bank.cpp). 0x528 bytes, built in place;
// its destructor is not exported.
class BankManager {
public:
    using AllocatorID = ttsl::StrongType<std::uint32_t, AllocatorIDTag>;

    // 0x40 bytes: a small vector of one empty dependency list, all in its inline storage (so
    // leaving it undestroyed frees nothing).
    class AllocatorDependencies {
    public:
        AllocatorDependencies();
        AllocatorDependencies(const AllocatorDependencies&) = delete;
        AllocatorDependencies& operator=(const AllocatorDependencies&) = delete;

    private:
        alignas(8) unsigned char bytes_[0x40];
    };

    BankManager(const BufferType& buffer_type, const std::unordered_map<unsigned int, long>& bank_offsets,
                DeviceAddr size_bytes, DeviceAddr interleaved_address_limit, std::uint32_t alignment_bytes,
                std::uint32_t granularity_bytes, DeviceAddr alloc_offset, bool disable_interleaved,
                const AllocatorDependencies& dependencies);
    BankManager(const BankManager&) = delete;
    BankManager& operator=(const BankManager&) = delete;
    DeviceAddr allocate_buffer(DeviceAddr size, DeviceAddr page_size, bool bottom_up, const CoreRangeSet& compute_grid,
                               std::optional<std::uint32_t> num_shards, AllocatorID allocator_id,
                               const std::vector<std::pair<DeviceAddr, DeviceAddr>>& avoid,
                               const std::optional<std::unordered_set<std::uint32_t>>& scope);
    void deallocate_buffer(DeviceAddr address, AllocatorID allocator_id);
    Statistics get_statistics(AllocatorID allocator_id) const;
    std::optional<DeviceAddr> lowest_occupied_address(std::uint32_t bank_id, AllocatorID allocator_id) const;
    void clear();

private:
    alignas(8) unsigned char bytes_[0x528];
};

// 12 bytes, inline in the library. Default: WORKER, no axis.
struct DispatchCoreConfig {
    std::uint32_t type = 0;
    std::optional<int> axis;
};

// Stand-in for the nlohmann::json that end_capture() returns (16 bytes, non-trivial, so it is
// returned through a hidden pointer). end_capture() is never called through this declaration.
struct OpaqueJson {
    std::uint8_t type_tag;
    std::uint64_t payload;
    ~OpaqueJson() {}
};

struct SpanArgs {  // ABI stand-in for std::span<TrackedArgument>: (pointer, length)
    void* data;
    std::size_t size;
};

class IGraphProcessor {
public:
    enum class RunMode : int { NORMAL = 0, NO_DISPATCH = 1 };
    IGraphProcessor() = default;
    // The slot order is ABI: it matches the library's 0x88-byte vtable for this class.
    virtual bool is_capture_processor() const { return true; }                            // 0
    virtual void track_allocate(const Buffer*) {}                                          // 1
    virtual void track_deallocate(Buffer*) {}                                              // 2
    virtual void track_allocate_cb(const CoreRangeSet&, std::uint64_t, std::uint64_t, bool,
                                   const IDevice*) {}                                      // 3
    virtual void track_allocate_dataflow_buffer(const CoreRangeSet&, std::uint64_t, std::uint64_t,
                                                bool, const IDevice*) {}                   // 4
    virtual void track_allocate_scratchpad(const CoreRangeSet&, std::uint64_t, std::uint64_t,
                                           const IDevice*) {}                              // 5
    virtual void track_deallocate_cb(const IDevice*) {}                                    // 6
    virtual void track_program(Program*, const IDevice*) {}                                // 7
    virtual void track_function_start(std::string_view, SpanArgs) {}                      // 8
    virtual void track_function_end() {}                                                   // 9
    virtual void track_function_end(const void* /* const std::any& */) {}                  // 10
    virtual void begin_capture(RunMode) {}                                                 // 11
    [[gnu::abi_tag("cxx11")]] virtual OpaqueJson end_capture();  // 12: key function (library)
    virtual ~IGraphProcessor() = default;                                                  // 13, 14
};

class GraphTracker {
public:
    GraphTracker() = delete;
    static GraphTracker& instance();
    bool is_enabled() const;
    void push_processor(const std::shared_ptr<IGraphProcessor>& processor);
    void pop_processor();
};

namespace distributed {

struct DeviceLocalBufferConfig {
    DeviceAddr page_size = 0;
    BufferType buffer_type = BufferType::DRAM;
    BufferShardingArgs sharding_args;
    std::optional<bool> bottom_up;
    std::optional<std::uint8_t> sub_device_id;  // a strong uint8_t type in the library
};

struct ReplicatedBufferConfig {
    DeviceAddr size = 0;
};

struct ShardedBufferConfig {  // declared for its size only: it sizes the variant below
    DeviceAddr global_size = 0;
    std::size_t global_buffer_shape[2] = {0, 0};
    std::size_t shard_shape[2] = {0, 0};
    ShardOrientation shard_orientation = ShardOrientation::ROW_MAJOR;
};

using MeshBufferConfig = std::variant<ReplicatedBufferConfig, ShardedBufferConfig>;

class MeshShape;  // owned by the MeshDevice; only passed back by reference

class MeshDevice {
public:
    MeshDevice() = delete;
    const MeshShape& shape() const;
    std::size_t num_rows() const;  // of a 2-D mesh; throws for another
    std::size_t num_cols() const;
    std::uint32_t l1_size_per_core() const;
    std::optional<DeviceAddr> lowest_occupied_compute_l1_address() const;
    const std::unique_ptr<Allocator>& allocator() const;
    bool close();
    ARCH arch() const;
    int id() const;
    std::size_t num_devices() const;
    xy_pair compute_with_storage_grid_size() const;
};

class MeshBuffer {
public:
    MeshBuffer() = delete;
    static std::shared_ptr<MeshBuffer> create(const MeshBufferConfig& config,
                                              const DeviceLocalBufferConfig& local_config,
                                              MeshDevice* mesh_device, std::optional<DeviceAddr> address);
    void deallocate();
    bool is_allocated() const;
    Buffer* get_reference_buffer() const;
};

// 240 bytes with an inline destructor. A 2-D mesh's coordinates (1x1 to 2x4 here) fit in the inline storage
// of its small vectors (checked at run time: tt_metal_abi.cpp), so nothing is freed by it.
class MeshCoordinateRange {
public:
    explicit MeshCoordinateRange(const MeshShape& shape);
    MeshCoordinateRange(const MeshCoordinateRange&) = delete;
    MeshCoordinateRange& operator=(const MeshCoordinateRange&) = delete;
    const unsigned char* bytes() const { return bytes_; }

private:
    alignas(8) unsigned char bytes_[240];
};

class MeshWorkloadImpl {
public:
    MeshWorkloadImpl() = delete;
    // Lays out the programs' circular buffers (at the first call) and validates them: the first
    // step of EnqueueMeshWorkload, without dispatch.
    void compile(MeshDevice* mesh_device);
};

// 8 bytes: a unique_ptr<MeshWorkloadImpl>.
class MeshWorkload {
public:
    MeshWorkload();
    MeshWorkload(MeshWorkload&& other);
    ~MeshWorkload();
    MeshWorkload(const MeshWorkload&) = delete;
    MeshWorkload& operator=(const MeshWorkload&) = delete;
    void add_program(const MeshCoordinateRange& range, Program&& program);
    MeshWorkloadImpl* impl_ptr() const { return impl_; }

private:
    MeshWorkloadImpl* impl_;
};

}  // namespace distributed

namespace experimental {
void configure_mock_mode(ARCH arch, std::uint32_t num_chips);
void disable_mock_mode();
}  // namespace experimental

}  // namespace tt_metal
}  // namespace tt

namespace memguard::ttm::pinned {

// The GNU build-id of the libtt_metal.so these declarations were checked against.
inline constexpr char kPinnedBuildId[] = "23bb346fe8447951975aca3c3eb261b08372522d";
inline constexpr char kPinnedRelease[] = "ttnn 0.81.1";

struct SpanU32 {  // ABI stand-in for std::span<const uint32_t>: (pointer, length) by value
    const std::uint32_t* data;
    std::size_t size;
};

// MeshDevice::create_unit_mesh(int device_id, size_t l1_small_size, size_t trace_region_size,
//     size_t num_command_queues, const DispatchCoreConfig&, std::span<const uint32_t> l1_bank_remap,
//     size_t worker_l1_size). std::span is C++20, so the symbol is bound by name.
std::shared_ptr<tt::tt_metal::distributed::MeshDevice> create_unit_mesh(
    int device_id, std::size_t l1_small_size, std::size_t trace_region_size, std::size_t num_command_queues,
    const tt::tt_metal::DispatchCoreConfig& dispatch_core_config, SpanU32 l1_bank_remap,
    std::size_t worker_l1_size)
    __asm__("_ZN2tt8tt_metal11distributed10MeshDevice16create_unit_meshEimmmRKNS0_18DispatchCoreConfigESt4spanIKjLm18446744073709551615EEm");

// MeshDeviceConfig is inline in the library and built by the caller: 0xe0 bytes holding an
// optional<MeshShape> (the shape at 0, 0x88 bytes, engaged flag at 0x88), an
// optional<MeshCoordinate> offset (at 0x90, 0x30 bytes, engaged flag at 0xc0) and a
// vector<int> of physical device ids (at 0xc8). Read from MeshDeviceImpl::create, which tests the
// flag at 0x88 and walks the vector at 0xc8, and from MeshShape's and MeshCoordinate's exported
// constructors, which fill 0x88 and 0x30 bytes.
struct MeshDeviceConfigBytes {
    alignas(8) unsigned char bytes[0xe0];
};
inline constexpr std::size_t kMeshShapeSize = 0x88;
inline constexpr std::size_t kMeshShapeEngaged = 0x88;

// MeshShape(uint32_t rows, uint32_t cols), constructed in place: a ShapeBase (a small vector of
// up to 8 uint32_t dims: data pointer at 0, storage at 0x10) and the strides (a small vector of up
// to 8 size_t: data pointer at 0x38, storage at 0x48).
void mesh_shape_2d(void* self, std::uint32_t rows, std::uint32_t cols)
    __asm__("_ZN2tt8tt_metal11distributed9MeshShapeC1Ejj");

// MeshDevice::create(const MeshDeviceConfig&, size_t l1_small_size, size_t trace_region_size,
//     size_t num_command_queues, const DispatchCoreConfig&, std::span<const uint32_t>
//     l1_bank_remap, size_t worker_l1_size).
std::shared_ptr<tt::tt_metal::distributed::MeshDevice> create_mesh(
    const MeshDeviceConfigBytes& config, std::size_t l1_small_size, std::size_t trace_region_size,
    std::size_t num_command_queues, const tt::tt_metal::DispatchCoreConfig& dispatch_core_config,
    SpanU32 l1_bank_remap, std::size_t worker_l1_size)
    __asm__("_ZN2tt8tt_metal11distributed10MeshDevice6createERKNS1_16MeshDeviceConfigEmmmRKNS0_18DispatchCoreConfigESt4spanIKjLm18446744073709551615EEm");

// The library's RTTI, for checked downcasts of an IDevice*.
extern const std::type_info idevice_typeinfo __asm__("_ZTIN2tt8tt_metal7IDeviceE");
extern const std::type_info mesh_device_typeinfo __asm__("_ZTIN2tt8tt_metal11distributed10MeshDeviceE");

}  // namespace memguard::ttm::pinned

// Layout pins, each checked against the 0.81.1 binary (see cpp/tt_metal_abi.cpp's header).
namespace memguard::ttm::pinned::layout {
using namespace tt::tt_metal;
static_assert(sizeof(void*) == 8, "x86-64 only");
static_assert(sizeof(tt::xy_pair) == 16);
static_assert(sizeof(CoreRange) == 32 && offsetof(CoreRange, end_coord) == 16);
static_assert(sizeof(CoreRangeSet) == 24);
static_assert(sizeof(ShardSpec) == 0x28 && offsetof(ShardSpec, shape) == 0x18 &&
              offsetof(ShardSpec, orientation) == 0x20);
static_assert(sizeof(ShardSpecBuffer) == 0x38 && offsetof(ShardSpecBuffer, page_shape) == 0x28 &&
              offsetof(ShardSpecBuffer, tensor2d_shape_in_pages) == 0x30);
static_assert(!std::is_trivially_copyable_v<ShardSpecBuffer>);
static_assert(sizeof(BufferShardingArgs) == 8);
static_assert(sizeof(Statistics) == 32);
static_assert(sizeof(DispatchCoreConfig) == 12);
static_assert(sizeof(OpaqueJson) == 16 && !std::is_trivially_destructible_v<OpaqueJson>);
static_assert(sizeof(distributed::DeviceLocalBufferConfig) == 0x20);
static_assert(offsetof(distributed::DeviceLocalBufferConfig, buffer_type) == 0x08);
static_assert(offsetof(distributed::DeviceLocalBufferConfig, sharding_args) == 0x10);
static_assert(offsetof(distributed::DeviceLocalBufferConfig, bottom_up) == 0x18);
static_assert(offsetof(distributed::DeviceLocalBufferConfig, sub_device_id) == 0x1a);
static_assert(sizeof(distributed::ShardedBufferConfig) == 0x30);
static_assert(sizeof(distributed::MeshBufferConfig) == 0x38);
static_assert(sizeof(SpanU32) == 16);
static_assert(sizeof(MeshDeviceConfigBytes) == 0xe0 && kMeshShapeSize <= kMeshShapeEngaged);
static_assert(sizeof(Program) == 16);
static_assert(sizeof(CoreSpec) == 40);
static_assert(sizeof(CircularBufferConfig) == 4432 && alignof(CircularBufferConfig) == 8);
static_assert(sizeof(distributed::MeshCoordinateRange) == 240);
static_assert(sizeof(distributed::MeshWorkload) == 8);
static_assert(sizeof(std::map<std::uint8_t, tt::DataFormat>) == 48);
static_assert(sizeof(BankManager::AllocatorID) == 4 && std::is_trivially_copyable_v<BankManager::AllocatorID>);
static_assert(sizeof(BankManager::AllocatorDependencies) == 0x40);
static_assert(sizeof(BankManager) == 0x528);
static_assert(std::is_same_v<std::int64_t, long> && std::is_same_v<DeviceAddr, unsigned long>);
}  // namespace memguard::ttm::pinned::layout

#endif  // MEMGUARD_TT_METAL_HEADERS
