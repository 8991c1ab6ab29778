// Conversions between the plain C++ of the devices and the bridge vocabulary (src/ffi/vocab.rs),
// shared by both bridge shims (sim_bridge.cpp, tt_metal_bridge.cpp), which include it after the
// cxx-generated headers. Only the shims see this file.
#pragma once

#include <cstdint>
#include <vector>

#include "circular_buffers.hpp"
#include "peak_marks.hpp"
#include "rust/cxx.h"

namespace memguard::ffi {

inline CoreBox to_bridge(const sim::CoreRange& r) {
    CoreBox out;
    out.x0 = r.x0;
    out.y0 = r.y0;
    out.x1 = r.x1;
    out.y1 = r.y1;
    return out;
}

inline CbCheck to_bridge(const sim::CbCheck& check, std::uint32_t handle) {
    CbCheck out;
    out.status = check.status;
    out.range = to_bridge(check.range);
    out.value = check.value;
    out.limit = check.limit;
    out.handle = handle;
    return out;
}

inline EnqueueOutcome to_bridge(const sim::EnqueueResult& run) {
    EnqueueOutcome out;
    out.check = to_bridge(run.check, 0);
    out.laid_out_now = run.laid_out_now;
    out.base = run.layout.base;
    out.max_end = run.layout.max_end;
    out.max_x = run.layout.max_x;
    out.max_y = run.layout.max_y;
    out.cores_with_cbs = run.layout.cores_with_cbs;
    out.has_lowest_l1 = run.lowest_l1.has_value();
    out.lowest_l1 = run.lowest_l1.value_or(0);
    out.l1_size = run.l1_size;
    out.l1_allocated = run.l1_allocated;
    return out;
}

inline PeakReading to_bridge(const PeakMarks::Peaks& peaks) {
    PeakReading out;
    for (std::size_t p = 0; p < kPoolCount; ++p) out.pools[p] = peaks[p];
    out.cb_per_core = peaks[kPeakCbBytes];
    out.l1_per_core = peaks[kPeakL1Total];
    out.headroom_gap = peaks[kPeakHeadroomGap];
    return out;
}

// A circular buffer request (without a backing buffer) in the devices' words.
inline sim::CircularBufferSpec cb_spec(rust::Slice<const CoreBox> ranges, std::uint64_t size,
                                       rust::Slice<const std::uint8_t> indices) {
    sim::CircularBufferSpec spec;
    spec.ranges.reserve(ranges.size());
    for (const CoreBox& r : ranges) spec.ranges.push_back(sim::CoreRange{r.x0, r.y0, r.x1, r.y1});
    spec.size = size;
    spec.indices.assign(indices.begin(), indices.end());
    return spec;
}

}  // namespace memguard::ffi
