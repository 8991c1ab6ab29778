// How the shim calls TT-Metal (see tt_metal_abi.hpp).
//
// ABI facts the declarations in tt_metal_api.hpp rely on were read from the 0.81.1 binary:
// DeviceLocalBufferConfig (0x20 B) and the MeshBufferConfig variant (0x38 B, index at 0x30) from
// MeshBuffer's constructor; BufferShardingArgs (one pointer to a 0x160 B impl) from its exported
// special members; ShardSpecBuffer (0x38 B, passed by invisible reference) from
// BufferShardingArgs(ShardSpecBuffer, TensorMemoryLayout); Statistics (4 x size_t) from
// AllocatorImpl::get_statistics; DispatchCoreConfig (12 B) from its std::hash; the 15 slots of
// IGraphProcessor's vtable from the relocations of _ZTVN2tt8tt_metal15IGraphProcessorE.

#include "tt_metal_abi.hpp"

#include <cstring>
#include <map>
#include <new>
#include <unordered_set>
#include <utility>
#include <vector>

#if !defined(MEMGUARD_TT_METAL_HEADERS)
#include <cxxabi.h>
#include <elf.h>
#include <link.h>
#endif

namespace memguard::ttm {

// ---- the TT-Metal API in one vocabulary ----------------------------------------------------------
namespace api {

#if defined(MEMGUARD_TT_METAL_HEADERS)

std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size) {
    return dist::MeshDevice::create_unit_mesh(device_id, l1_small_size, trace_region_size, num_command_queues,
                                              metal::DispatchCoreConfig{}, {}, worker_l1_size);
}

std::shared_ptr<dist::MeshDevice> create_mesh(std::uint32_t rows, std::uint32_t cols, std::size_t l1_small_size,
                                              std::size_t trace_region_size, std::size_t num_command_queues,
                                              std::size_t worker_l1_size) {
    const dist::MeshShape shape = rows == 0 ? dist::SystemMesh::instance().shape() : dist::MeshShape(rows, cols);
    return dist::MeshDevice::create(dist::MeshDeviceConfig(shape), l1_small_size, trace_region_size, num_command_queues,
                                    metal::DispatchCoreConfig{}, {}, worker_l1_size);
}

const void* identity(const metal::IDevice* device) { return dynamic_cast<const void*>(device); }

const void* identity(const dist::MeshDevice* mesh) {
    return dynamic_cast<const void*>(static_cast<const metal::IDevice*>(mesh));
}

dist::MeshDevice* as_mesh_device(metal::IDevice* device) { return dynamic_cast<dist::MeshDevice*>(device); }

std::string check_library() { return {}; }

metal::BufferShardingArgs height_sharded(metal::CoreRangeSet grid, std::uint32_t pages_per_shard,
                                         std::uint32_t pages) {
    metal::ShardSpecBuffer spec(grid, {32 * pages_per_shard, 32}, metal::ShardOrientation::ROW_MAJOR, {32, 32},
                                {pages, 1});
    return metal::BufferShardingArgs(spec, metal::TensorMemoryLayout::HEIGHT_SHARDED);
}

void create_circular_buffer(metal::Program& program, const std::vector<metal::CoreRange>& ranges,
                            std::uint32_t total_size, const std::vector<std::uint8_t>& indices) {
    std::map<std::uint8_t, tt::DataFormat> formats;
    for (std::uint8_t index : indices) formats.emplace(index, tt::DataFormat::Float16_b);
    metal::CircularBufferConfig config(total_size, formats);
    for (std::uint8_t index : indices) config.set_page_size(index, total_size);
    std::vector<metal::CoreRange> copy = ranges;
    metal::CreateCircularBuffer(program, metal::CoreRangeSet(std::move(copy)), config);
}

std::uint64_t program_id(const metal::Program& program) { return program.impl().get_id(); }

std::unique_ptr<dist::MeshWorkload> make_workload(metal::Program&& program, dist::MeshDevice* mesh) {
    auto workload = std::make_unique<dist::MeshWorkload>();
    workload->add_program(dist::MeshCoordinateRange(mesh->shape()), std::move(program));
    return workload;
}

void compile(dist::MeshWorkload& workload, dist::MeshDevice* mesh) { workload.impl().compile(mesh); }

#else

std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size) {
    return pinned::create_unit_mesh(device_id, l1_small_size, trace_region_size, num_command_queues,
                                 metal::DispatchCoreConfig{}, pinned::SpanU32{nullptr, 0}, worker_l1_size);
}

std::shared_ptr<dist::MeshDevice> create_mesh(std::uint32_t rows, std::uint32_t cols, std::size_t l1_small_size,
                                              std::size_t trace_region_size, std::size_t num_command_queues,
                                              std::size_t worker_l1_size) {
    // The config is built here, zeroed: no offset, no physical device ids, and no shape unless one
    // is given (the library then opens the system's mesh). The shape is constructed in place by
    // the library's own constructor; its two small vectors must use their inline storage, so that
    // leaving it undestroyed frees nothing.
    pinned::MeshDeviceConfigBytes config;
    std::memset(config.bytes, 0, sizeof config.bytes);
    if (rows != 0) {
        pinned::mesh_shape_2d(config.bytes, rows, cols);
        const void* dims = nullptr;
        const void* strides = nullptr;
        std::memcpy(&dims, config.bytes, sizeof dims);
        std::memcpy(&strides, config.bytes + 0x38, sizeof strides);
        if (dims != config.bytes + 0x10 || strides != config.bytes + 0x48) {
            throw Failure(
                "TT-Metal's MeshShape does not have the layout tt-memguard's declarations were checked against "
                "(ttnn 0.81.1): build against your install's headers with TT_METAL_HOME");
        }
        config.bytes[pinned::kMeshShapeEngaged] = 1;
    }
    return pinned::create_mesh(config, l1_small_size, trace_region_size, num_command_queues,
                               metal::DispatchCoreConfig{}, pinned::SpanU32{nullptr, 0}, worker_l1_size);
}

// Itanium C++ ABI: a vtable's offset-to-top entry sits two slots before the address the vptr
// holds; adding it to a polymorphic subobject's address gives the complete object's address.
const void* complete_object(const void* polymorphic) {
    const std::ptrdiff_t* vptr = *static_cast<const std::ptrdiff_t* const*>(polymorphic);
    return static_cast<const char*>(polymorphic) + vptr[-2];
}

const void* identity(const metal::IDevice* device) { return complete_object(device); }
const void* identity(const dist::MeshDevice* mesh) { return complete_object(mesh); }

dist::MeshDevice* as_mesh_device(metal::IDevice* device) {
    void* mesh = ::abi::__dynamic_cast(
        device, reinterpret_cast<const ::abi::__class_type_info*>(&pinned::idevice_typeinfo),
        reinterpret_cast<const ::abi::__class_type_info*>(&pinned::mesh_device_typeinfo), -1);
    return static_cast<dist::MeshDevice*>(mesh);
}

namespace {

struct BuildIdSearch {
    std::string path;
    std::string build_id;
    bool found = false;
};

int find_build_id(dl_phdr_info* info, std::size_t, void* data) {
    auto* search = static_cast<BuildIdSearch*>(data);
    const char* name = info->dlpi_name ? info->dlpi_name : "";
    const char* base = std::strrchr(name, '/');
    if (std::strcmp(base ? base + 1 : name, "libtt_metal.so") != 0) return 0;
    search->found = true;
    search->path = name;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const char* note = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
        const char* end = note + ph.p_memsz;
        while (note + sizeof(ElfW(Nhdr)) <= end) {
            const auto* header = reinterpret_cast<const ElfW(Nhdr)*>(note);
            const char* name_field = note + sizeof(ElfW(Nhdr));
            const char* desc = name_field + ((header->n_namesz + 3) & ~3u);
            if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 &&
                std::memcmp(name_field, "GNU", 4) == 0) {
                static const char kHex[] = "0123456789abcdef";
                for (std::uint32_t b = 0; b < header->n_descsz; ++b) {
                    const auto byte = static_cast<unsigned char>(desc[b]);
                    search->build_id += kHex[byte >> 4];
                    search->build_id += kHex[byte & 15];
                }
                return 1;
            }
            note = desc + ((header->n_descsz + 3) & ~3u);
        }
    }
    return 1;
}

}  // namespace

std::string check_library() {
    static const std::string problem = [] {
        BuildIdSearch search;
        dl_iterate_phdr(find_build_id, &search);
        if (!search.found) return std::string("libtt_metal.so is not loaded in this process");
        if (search.build_id == pinned::kPinnedBuildId) return std::string();
        return "the loaded " + search.path + " has GNU build-id " +
               (search.build_id.empty() ? std::string("(none)") : search.build_id) +
               ", but tt-memguard's TT-Metal declarations were checked against " + pinned::kPinnedRelease +
               " (build-id " + pinned::kPinnedBuildId +
               "): point TT_MEMGUARD_TTNN_LIB_DIR at that wheel's ttnn/build/lib, or build against your "
               "install's headers with TT_METAL_HOME";
    }();
    return problem;
}

metal::BufferShardingArgs height_sharded(metal::CoreRangeSet grid, std::uint32_t pages_per_shard,
                                         std::uint32_t pages) {
    metal::ShardSpecBuffer spec{metal::ShardSpec{std::move(grid), {32 * pages_per_shard, 32},
                                                 metal::ShardOrientation::ROW_MAJOR},
                                {32, 32},
                                {pages, 1}};
    return metal::BufferShardingArgs(spec, metal::TensorMemoryLayout::HEIGHT_SHARDED);
}

namespace {

// The three std::unordered_set<uint8_t> of buffer indices inside a CircularBufferConfig (all,
// local, remote), found in the 0.81.1 binary; the only members that own memory.
constexpr std::size_t kCbIndexSets[] = {4248, 4304, 4360};
using IndexSet = std::unordered_set<std::uint8_t>;
static_assert(sizeof(IndexSet) == 56);

// Whether a libstdc++ unordered_set sits at `at`: its max load factor (1.0 unless changed) at
// +32, and its bucket array either its own single bucket (+48) or on the heap.
bool looks_like_index_set(const unsigned char* at) {
    float load = 0;
    std::memcpy(&load, at + 32, sizeof load);
    const void* buckets = nullptr;
    std::memcpy(&buckets, at, sizeof buckets);
    std::size_t bucket_count = 0;
    std::memcpy(&bucket_count, at + 8, sizeof bucket_count);
    return load == 1.0f && bucket_count >= 1 && buckets != nullptr;
}

// A CircularBufferConfig built here and destroyed here (the library has no destructor for it).
class CbConfig {
public:
    CbConfig(std::uint32_t total_size, const std::map<std::uint8_t, tt::DataFormat>& formats) {
        config_ = new (storage_) metal::CircularBufferConfig(total_size, formats);
        std::uint32_t total = 0;
        std::memcpy(&total, storage_ + 8, sizeof total);
        bool sets = true;
        for (std::size_t at : kCbIndexSets) sets = sets && looks_like_index_set(storage_ + at);
        if (total != total_size || !sets) {
            // Leak rather than free what may not be a set: the layout is not the pinned one.
            config_ = nullptr;
            throw Failure(
                "TT-Metal's CircularBufferConfig does not have the layout tt-memguard's declarations were checked "
                "against (ttnn 0.81.1): build against your install's headers with TT_METAL_HOME");
        }
    }
    ~CbConfig() {
        if (config_ == nullptr) return;
        for (std::size_t at : kCbIndexSets) reinterpret_cast<IndexSet*>(storage_ + at)->~IndexSet();
    }
    CbConfig(const CbConfig&) = delete;
    CbConfig& operator=(const CbConfig&) = delete;
    metal::CircularBufferConfig& get() { return *config_; }

private:
    alignas(8) unsigned char storage_[sizeof(metal::CircularBufferConfig)];
    metal::CircularBufferConfig* config_ = nullptr;
};

}  // namespace

void create_circular_buffer(metal::Program& program, const std::vector<metal::CoreRange>& ranges,
                            std::uint32_t total_size, const std::vector<std::uint8_t>& indices) {
    std::map<std::uint8_t, tt::DataFormat> formats;
    for (std::uint8_t index : indices) formats.emplace(index, tt::DataFormat::Float16_b);
    CbConfig config(total_size, formats);
    guarded([&] {
        for (std::uint8_t index : indices) config.get().set_page_size(index, total_size);
        std::vector<metal::CoreRange> copy = ranges;
        const metal::CoreSpec cores{ranges.size() == 1 ? metal::CoreRangeSet(ranges.front())
                                                       : metal::CoreRangeSet(std::move(copy))};
        metal::CreateCircularBuffer(program, cores, config.get());
    });
}

std::uint64_t program_id(const metal::Program& program) { return program.impl_ptr()->get_id(); }

std::unique_ptr<dist::MeshWorkload> make_workload(metal::Program&& program, dist::MeshDevice* mesh) {
    return guarded([&] {
        auto workload = std::make_unique<dist::MeshWorkload>();
        dist::MeshCoordinateRange range(mesh->shape());
        // Its destructor is inline in the library and only frees coordinates that did not fit in
        // the inline storage of its two small vectors (data pointers at +0 and +48, storage at +16
        // and +64): check they fit, so that not running it frees nothing.
        const unsigned char* bytes = range.bytes();
        const void* start = nullptr;
        const void* end = nullptr;
        std::memcpy(&start, bytes, sizeof start);
        std::memcpy(&end, bytes + 48, sizeof end);
        if (start != bytes + 16 || end != bytes + 64) {
            throw Failure(
                "TT-Metal's MeshCoordinateRange does not have the layout tt-memguard's declarations were checked "
                "against (ttnn 0.81.1), or the mesh has more than 2 dimensions");
        }
        workload->add_program(range, std::move(program));
        return workload;
    });
}

void compile(dist::MeshWorkload& workload, dist::MeshDevice* mesh) { workload.impl_ptr()->compile(mesh); }

#endif

}  // namespace api

// ---- errors ---------------------------------------------------------------------------------------
std::string clean_message(const char* what) {
    std::string text = what ? what : "";
    // TT_FATAL / TT_THROW: "TT_FATAL @ file:line: cond\ninfo:\n<message>\nbacktrace:\n ..."
    const std::size_t info = text.find("info:\n");
    if (info != std::string::npos) text = text.substr(info + 6);
    const std::size_t trace = text.find("backtrace:");
    if (trace != std::string::npos) text = text.substr(0, trace);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

// ---- pools ----------------------------------------------------------------------------------------
metal::BufferType metal_type(Pool pool) {
    switch (pool) {
        case Pool::Dram: return metal::BufferType::DRAM;
        case Pool::L1: return metal::BufferType::L1;
        case Pool::L1Small: return metal::BufferType::L1_SMALL;
        case Pool::Trace: return metal::BufferType::TRACE;
    }
    throw Failure("unknown pool value " + std::to_string(static_cast<int>(pool)));
}

std::optional<Pool> pool_of(metal::BufferType type) {
    switch (type) {
        case metal::BufferType::DRAM: return Pool::Dram;
        case metal::BufferType::L1: return Pool::L1;
        case metal::BufferType::L1_SMALL: return Pool::L1Small;
        case metal::BufferType::TRACE: return Pool::Trace;
        default: return std::nullopt;
    }
}

}  // namespace memguard::ttm
