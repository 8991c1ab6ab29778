// Peak (high-water) marks over a device's four pools, shared by the simulated
// device and the TT-Metal shim. Plain C++17, header only.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "vocab.hpp"

namespace memguard {

// Per-pool peak marks, O(1) per allocation whatever the number of active
// marks. Active marks are kept in creation order; an allocation raises only
// the newest one. The peak of mark m since it was taken is the maximum over m
// and every newer active mark (each covers the time since it became the
// newest), and releasing a mark folds its peak into the next older active
// mark, so no interval is ever lost. Reading is O(newer active marks).
class PeakMarks {
public:
    // One maximum per slot: the four pools, then the program figures (vocab.hpp).
    static constexpr std::size_t kPools = kPeakSlots;
    using Peaks = std::array<std::uint64_t, kPools>;

    // Starts a mark whose peaks are `now`; returns its id. Throws
    // std::length_error when 2^32 - 1 marks are active.
    std::uint32_t start(const Peaks& now) {
        std::uint32_t id;
        if (free_.empty()) {
            if (marks_.size() >= kNone) throw std::length_error("too many active peak marks");
            id = static_cast<std::uint32_t>(marks_.size());
            marks_.emplace_back();
        } else {
            id = free_.back();
            free_.pop_back();
        }
        Mark& mark = marks_[id];
        mark.active = true;
        mark.peak = now;
        mark.older = newest_;
        mark.newer = kNone;
        if (newest_ != kNone) marks_[newest_].newer = id;
        newest_ = id;
        ++active_;
        return id;
    }

    // Records `allocated` bytes of pool `pool` (after an allocation).
    void note(std::size_t pool, std::uint64_t allocated) {
        if (newest_ == kNone) return;
        std::uint64_t& peak = marks_[newest_].peak[pool];
        if (allocated > peak) peak = allocated;
    }

    bool is_active(std::uint32_t id) const { return id < marks_.size() && marks_[id].active; }

    // The peaks of an active mark (is_active(id) must hold).
    Peaks read(std::uint32_t id) const {
        Peaks out = marks_[id].peak;
        for (std::uint32_t m = marks_[id].newer; m != kNone; m = marks_[m].newer) {
            for (std::size_t p = 0; p < kPools; ++p) out[p] = std::max(out[p], marks_[m].peak[p]);
        }
        return out;
    }

    // Ends a mark; ignored when it is not active.
    void release(std::uint32_t id) {
        if (!is_active(id)) return;
        Mark& mark = marks_[id];
        if (mark.older != kNone) {
            Mark& older = marks_[mark.older];
            for (std::size_t p = 0; p < kPools; ++p) older.peak[p] = std::max(older.peak[p], mark.peak[p]);
            older.newer = mark.newer;
        }
        if (mark.newer != kNone) {
            marks_[mark.newer].older = mark.older;
        } else {
            newest_ = mark.older;
        }
        mark.active = false;
        free_.push_back(id);
        --active_;
    }

    std::size_t active() const { return active_; }

private:
    static constexpr std::uint32_t kNone = UINT32_MAX;
    struct Mark {
        bool active = false;
        std::uint32_t older = kNone;
        std::uint32_t newer = kNone;
        Peaks peak{};
    };

    std::vector<Mark> marks_;
    std::vector<std::uint32_t> free_;
    std::uint32_t newest_ = kNone;
    std::size_t active_ = 0;
};

}  // namespace memguard
