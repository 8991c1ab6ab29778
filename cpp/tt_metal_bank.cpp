// TT-Metal's L1 bank manager driven directly (see tt_metal_bank.hpp).
#include "tt_metal_bank.hpp"

#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "tt_metal_abi.hpp"

namespace memguard::ttm {

#if defined(MEMGUARD_TT_METAL_HEADERS)

std::vector<BankStep> replay_l1_bank(const BankGeometry&, std::uint64_t, const std::vector<BankOp>&) {
    throw Failure(
        "driving TT-Metal's bank manager directly needs tt-memguard's own declarations (TT_MEMGUARD_TTNN_LIB_DIR): "
        "the bank manager is not part of TT-Metal's installed headers");
}

#else

std::vector<BankStep> replay_l1_bank(const BankGeometry& g, std::uint64_t limit, const std::vector<BankOp>& ops) {
    // The bank manager is built in place from its pinned size: only on the pinned library.
    const std::string problem = api::check_library();
    if (!problem.empty()) throw Failure(problem);
    if (g.banks == 0 || g.grid_x == 0 || g.grid_y == 0 || g.alignment == 0 || g.granularity == 0) {
        throw Failure("an L1 bank manager needs banks, a compute grid and alignments");
    }
    const metal::BankManager::AllocatorID id{0};
    std::unordered_map<unsigned int, long> offsets;
    for (std::uint32_t bank = 0; bank < g.banks; ++bank) offsets.emplace(bank, 0);
    const metal::BufferType type = metal::BufferType::L1;
    // Neither is ever destroyed: the dependencies own nothing, the bank manager's destructor is
    // not exported (what it owns stays allocated).
    auto* dependencies = new metal::BankManager::AllocatorDependencies();
    auto* manager = guarded([&] {
        return new metal::BankManager(type, offsets, g.size, limit, g.alignment, g.granularity, g.base, false,
                                      *dependencies);
    });
    const metal::CoreRangeSet grid(metal::CoreRange({0, 0}, {g.grid_x - 1, g.grid_y - 1}));
    const std::vector<std::pair<metal::DeviceAddr, metal::DeviceAddr>> avoid;
    const std::optional<std::unordered_set<std::uint32_t>> scope;

    std::vector<BankStep> steps;
    steps.reserve(ops.size());
    for (const BankOp& op : ops) {
        BankStep step;
        if (op.free) {
            if (op.step >= steps.size() || !steps[op.step].placed || ops[op.step].free) {
                step.error = "step " + std::to_string(op.step) + " placed no buffer to free";
            } else {
                guarded([&] { manager->deallocate_buffer(steps[op.step].address, id); });
            }
        } else {
            const std::optional<std::uint32_t> shards =
                op.shards > 0 ? std::optional<std::uint32_t>(op.shards) : std::nullopt;
            try {
                step.address = manager->allocate_buffer(op.size, op.page_size, op.bottom_up, grid, shards, id, avoid, scope);
                step.placed = true;
            } catch (const std::exception& e) {
                step.error = clean_message(e.what());
            }
        }
        guarded([&] {
            const metal::Statistics stats = manager->get_statistics(id);
            step.allocated = stats.total_allocated_bytes;
            step.free = stats.total_free_bytes;
            step.largest_free = stats.largest_free_block_bytes;
            step.lowest = manager->lowest_occupied_address(0, id);
        });
        steps.push_back(std::move(step));
    }
    // Its blocks back to one free block; the object itself stays allocated.
    guarded([&] { manager->clear(); });
    return steps;
}

#endif

}  // namespace memguard::ttm
