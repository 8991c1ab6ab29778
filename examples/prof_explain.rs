use std::hint::black_box;
use tt_memguard::{BufferType, MemoryGuard, SimDevice};
fn main() {
    let dev = SimDevice::wormhole_b0();
    let explain = std::env::args().nth(1).as_deref() == Some("x");
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        let guard = MemoryGuard::new(&dev).explain(explain);
        for _ in 0..1000 {
            black_box(dev.allocate(BufferType::Dram, 12 * 2048, 2048).unwrap());
        }
        black_box(guard.finish().unwrap());
    }
    println!("{:?} per guard", t.elapsed() / 2000);
}
