//! Every duration a service accepts starts it and serves a first request
//! without a panic: a property test over the whole accepted range of each
//! duration setting of both services, serving's included (an
//! HTTP_IDLE_TIMEOUT under 4 ns once panicked on every connection). The
//! duration settings are found from the services' own flags, so a new one
//! is covered without a change here.

use std::{
    cell::Cell,
    sync::{Arc, Once},
    time::Duration,
};

use clap::{CommandFactory, Parser};
use proptest::{prelude::*, test_runner::TestRunner};
use settings::{Validate, MAX_DURATION, MIN_NONZERO_DURATION};
use system_tests::{spawn_service1, spawn_service2_with};

thread_local! {
    /// Panics on this thread since the hook was installed.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts each panic on the thread it happens on, then reports it as
/// before. The services run on the test's own thread (a current-thread
/// runtime), so a panic in any of their tasks counts there, and other
/// tests' panics on their own threads do not.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info)
        }));
    });
}

/// A duration flag: its name, and whether it takes 0.
#[derive(Debug, Clone)]
struct DurationFlag {
    long: String,
    zero: bool,
}

/// The flags of `C` that take a duration: `1s` parses and a bare number
/// does not. `base` are flags every parse needs.
fn duration_flags<C: Parser + CommandFactory>(base: &[&str]) -> Vec<DurationFlag> {
    let parses = |long: &str, value: &str| {
        let mut args: Vec<String> = base.iter().map(|a| a.to_string()).collect();
        args.extend([format!("--{long}"), value.to_owned()]);
        C::try_parse_from(args).is_ok()
    };
    C::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .filter(|long| parses(long, "1s") && !parses(long, "7"))
        .map(|long| DurationFlag { zero: parses(&long, "0s"), long })
        .collect()
}

/// Values across the accepted range, ends included: log-uniform, so that
/// a millisecond is as likely as a day.
fn duration(flag: &DurationFlag) -> impl Strategy<Value = Duration> {
    let least = if flag.zero { Duration::ZERO } else { MIN_NONZERO_DURATION };
    let (low, high) = (MIN_NONZERO_DURATION.as_nanos() as f64, MAX_DURATION.as_nanos() as f64);
    prop_oneof![
        Just(least),
        Just(MAX_DURATION),
        (0.0..=1.0f64).prop_map(move |x| Duration::from_nanos((low * (high / low).powf(x)) as u64)),
    ]
}

fn args(flags: &[DurationFlag], values: &[Duration]) -> Vec<String> {
    flags
        .iter()
        .zip(values)
        .flat_map(|(f, v)| [format!("--{}", f.long), format!("{}ns", v.as_nanos())])
        .collect()
}

/// Whether the services would start with `args` (flags that span several
/// settings, such as an ejection longer than its maximum, exit 2 instead).
fn valid<C: Parser + Validate>(name: &str, args: &[String]) -> bool {
    let all = [name, "--tls-mode", "insecure"].into_iter().map(str::to_owned).chain(args.iter().cloned());
    C::try_parse_from(all.collect::<Vec<_>>()).is_ok_and(|config| config.validate().is_ok())
}

#[test]
fn no_accepted_duration_panics_at_start_or_on_the_first_request() {
    count_panics();
    let service1_flags = duration_flags::<service1::Config>(&["service1"]);
    let service2_flags = duration_flags::<service2::Config>(&["service2"]);
    assert!(service1_flags.iter().any(|f| f.long == "http-idle-timeout"), "{service1_flags:?}");
    assert!(service2_flags.iter().any(|f| f.long == "service1-ready-wait"), "{service2_flags:?}");
    let strategy = (
        service1_flags.iter().map(duration).collect::<Vec<_>>(),
        service2_flags.iter().map(duration).collect::<Vec<_>>(),
    );
    // Few cases: each starts both services. The ends of every range come
    // up often (a third of the draws each), which is where panics were.
    let config = ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() };
    let flags = Arc::new((service1_flags, service2_flags));
    TestRunner::new(config)
        .run(&strategy, |(one, two)| {
            let (one, two) = (args(&flags.0, &one), args(&flags.1, &two));
            prop_assume!(valid::<service1::Config>("service1", &one));
            prop_assume!(valid::<service2::Config>("service2", &two));
            let before = PANICS.with(Cell::get);
            let status = first_request(&one, &two);
            let panics = PANICS.with(Cell::get) - before;
            prop_assert_eq!(panics, 0, "service1 {:?}, service2 {:?}", one, two);
            prop_assert_ne!(status, Some(500), "service1 {:?}, service2 {:?}", one, two);
            Ok(())
        })
        .unwrap();
}

/// Starts both services with these flags, sends one say-hello, and stops
/// them by dropping their runtime (a drain delay may be a week long). The
/// status, unless the request failed or took over a second: a short header
/// timeout may close the connection, and a long wait for a replica that
/// cannot connect in a millisecond may outlast the test's patience, and
/// neither is a panic.
fn first_request(service1: &[String], service2: &[String]) -> Option<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let one: Vec<&str> = service1.iter().map(String::as_str).collect();
        let two: Vec<&str> = service2.iter().map(String::as_str).collect();
        let service1 = spawn_service1(&one).await;
        let service2 = spawn_service2_with(service1.grpc_addr, &two).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("client");
        let reply = client.get(service2.url("/api/v1/say-hello?name=property")).send().await;
        reply.ok().map(|r| r.status().as_u16())
    })
}
