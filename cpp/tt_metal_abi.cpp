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

#else

std::shared_ptr<dist::MeshDevice> create_unit_mesh(int device_id, std::size_t l1_small_size,
                                                   std::size_t trace_region_size, std::size_t num_command_queues,
                                                   std::size_t worker_l1_size) {
    return pinned::create_unit_mesh(device_id, l1_small_size, trace_region_size, num_command_queues,
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
