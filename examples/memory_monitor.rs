//! A live view of device memory: follows the stream a memguard run writes
//! (`TT_MEMGUARD_LIVE=FILE cargo test`, or `cargo nextest run`: its
//! processes share the file) and redraws, per device and pool, banks, total,
//! allocated with %, free, largest free block and a usage bar, with the test
//! running on each device. Two devices of one name show with their instance
//! ids; a file replaced or truncated by a new run is followed from its start.
//!
//! ```text
//! cargo run --example memory_monitor -- FILE            # follow a run
//! cargo run --example memory_monitor -- --demo          # a simulated workload of its own
//! cargo run --example memory_monitor -- FILE --once --plain   # one grep-able block, for logs
//! cargo run --example memory_monitor -- --demo --map    # with each device's address map
//! cargo run --example memory_monitor -- --help          # every option
//! ```
//!
//! It exits when the run ends; a stream shared by the processes of one run
//! (nextest) has no last process to wait for, so it follows until Ctrl+C.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tt_memguard::live::LiveStream;
use tt_memguard::monitor::{Follower, MonitorState};
use tt_memguard::render::ColorChoice;
use tt_memguard::{BufferType, KIB, MIB, Preset, SimDevice};

const USAGE: &str =
    "usage: memory_monitor (FILE | --demo) [-r MS] [--plain] [--once] [--map] [--color auto|always|never]

  FILE           a live stream, written by a run with TT_MEMGUARD_LIVE=FILE
  --demo         follow a simulated workload of its own
  -r, --refresh  redraw every MS milliseconds (default 500)
  --plain        grep-able key=value lines instead of the table
  --map          also draw each device's address map: one L1 bank (L1_SMALL at
                 its top) and one DRAM bank (TRACE at its top), buffers and gaps
                 by address, the largest buffers with their labels
  --once         draw once and exit (with --demo: once the demo has allocated)
  --color        auto, always or never (NO_COLOR is honoured)
  -h, --help     this text";

/// Cells of an address map's bar.
const MAP_WIDTH: usize = 64;

struct Options {
    source: Option<PathBuf>,
    demo: bool,
    refresh: u64,
    plain: bool,
    once: bool,
    map: bool,
    color: ColorChoice,
}

/// What the command line asks for: a run, or the help text.
enum Command {
    Run(Options),
    Help,
}

fn parse_args() -> Result<Command, String> {
    let mut o = Options {
        source: None,
        demo: false,
        refresh: 500,
        plain: false,
        once: false,
        map: false,
        color: ColorChoice::Auto,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-r" | "--refresh" => {
                let v = args.next().ok_or("-r expects milliseconds, e.g. -r 250")?;
                o.refresh = v.parse().ok().filter(|&ms| ms > 0).ok_or(format!(
                    "-r {v:?}: expected a whole number of milliseconds, at least 1"
                ))?;
            }
            "--plain" => o.plain = true,
            "--map" => o.map = true,
            "--once" => o.once = true,
            "--demo" => o.demo = true,
            "--color" => {
                o.color = match args.next().as_deref() {
                    Some("auto") => ColorChoice::Auto,
                    Some("always") => ColorChoice::Always,
                    Some("never") => ColorChoice::Never,
                    other => {
                        return Err(format!("--color {other:?}: expected auto, always or never"));
                    }
                }
            }
            "-h" | "--help" => return Ok(Command::Help),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}; try --help"));
            }
            path => o.source = Some(PathBuf::from(path)),
        }
    }
    if o.source.is_none() && !o.demo {
        return Err(
            "give a live stream FILE (written by a run with TT_MEMGUARD_LIVE=FILE) or --demo; try --help"
                .into(),
        );
    }
    Ok(Command::Run(o))
}

/// A simulated workload that writes its own live stream: layers allocate
/// weights and activations in every pool (its device has an L1_SMALL and a
/// TRACE region), some are freed, L1 fills towards red. `ready` is set once
/// the first layer's buffers are placed and snapshotted.
fn start_demo(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
) -> tt_memguard::Result<()> {
    let live = LiveStream::create(&path, Duration::from_millis(100))?;
    let dev = SimDevice::builder(Preset::WormholeB0)
        .l1_small_size(64 * KIB)
        .trace_region_size(96 * MIB)
        .build()?;
    std::thread::spawn(move || {
        let mut step = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let test = format!("layer_{:02}", step % 24);
            live.test_start(&dev, &test);
            let watch = live.watch(&dev, Some(&test));
            let mut kept = Vec::new();
            let halo = dev
                .buffer(BufferType::L1Small, (4 + step % 8) * 64 * KIB)
                .page_size(2048)
                .sharded(64)
                .label("halo")
                .allocate();
            let trace = dev
                .buffer(BufferType::Trace, (12 + 6 * (step % 8)) * MIB)
                .page_size(2048)
                .label("trace")
                .allocate();
            kept.extend(halo.into_iter().chain(trace));
            for i in 0..(4 + step % 8) {
                let act = dev
                    .buffer(BufferType::L1, 64 * (32 + 16 * i) * KIB)
                    .page_size(2048)
                    .label(format!("act{i}"))
                    .allocate();
                let weights = dev
                    .buffer(BufferType::Dram, (64 + 32 * i) * MIB)
                    .page_size(2048)
                    .label(format!("weights{i}"))
                    .allocate();
                kept.extend(act.into_iter().chain(weights));
                if i == 0 {
                    watch.snapshot();
                    ready.store(true, Ordering::Release);
                }
                std::thread::sleep(Duration::from_millis(60));
            }
            drop(kept);
            drop(watch);
            live.test_end(&dev, &test, true, String::new());
            step += 1;
        }
        live.finish(step, 0);
    });
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // Ctrl+C ends the loop; the terminal is restored on the way out.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let path = match (&options.source, options.demo) {
        (Some(path), _) => path.clone(),
        (None, _) => {
            let path = std::env::temp_dir().join(format!(
                "memguard-monitor-demo-{}.jsonl",
                std::process::id()
            ));
            let ready = Arc::new(AtomicBool::new(false));
            if let Err(e) = start_demo(path.clone(), Arc::clone(&stop), Arc::clone(&ready)) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            if options.once {
                // One frame of an empty stream shows nothing: wait for the
                // demo's first buffers (it places them within milliseconds).
                let give_up = Instant::now() + Duration::from_secs(10);
                while !ready.load(Ordering::Acquire) && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            path
        }
    };
    let mut follower = match Follower::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let color = !options.plain && options.color.for_stdout();
    let screen = !options.plain && !options.once;
    let source = path.display().to_string();
    let mut state = MonitorState::default();
    let mut stdout = std::io::stdout();
    if screen {
        let _ = write!(stdout, "\x1b[?1049h\x1b[?25l"); // alternate screen, hide cursor
    }
    let code = loop {
        // Read what is there, for at most one refresh period (all of it with
        // --once), then draw: a stream that grows faster than it is read
        // still gets drawn, and memory stays bounded.
        // `None`: a refresh period too long for the clock, no deadline.
        let deadline = Instant::now().checked_add(Duration::from_millis(options.refresh));
        let read = loop {
            match follower.poll() {
                Ok(update) => {
                    state.update(&update);
                    let late = deadline.is_some_and(|at| Instant::now() >= at);
                    if !update.more || (!options.once && late) {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = read {
            break Err(e);
        }
        let mut frame = if options.plain {
            state.render_plain()
        } else {
            state.render_screen(&source, options.refresh, color)
        };
        if options.map {
            frame.push('\n');
            frame.push_str(&state.render_map(MAP_WIDTH, color));
        }
        if screen {
            let _ = write!(stdout, "\x1b[H\x1b[2J{frame}");
        } else {
            let _ = writeln!(stdout, "{frame}");
        }
        let _ = stdout.flush();
        // A run shared by several processes (one per test) has no last
        // writer to wait for: keep following until Ctrl+C.
        let run_over = state.ended.is_some() && state.shared_run().is_none();
        if options.once || run_over || stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        // Sleep in small steps so that Ctrl+C is answered at once.
        let mut slept = 0;
        while slept < options.refresh && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(options.refresh.min(20)));
            slept += options.refresh.min(20);
        }
    };
    if screen {
        let _ = write!(stdout, "\x1b[?25h\x1b[?1049l"); // restore
        let _ = stdout.flush();
        if code.is_ok() {
            // Leave the last frame on the normal screen.
            println!("{}", state.render_screen(&source, options.refresh, color));
        }
    }
    stop.store(true, Ordering::Relaxed);
    if options.demo {
        std::thread::sleep(Duration::from_millis(150));
        let _ = std::fs::remove_file(&path);
    }
    match code {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
