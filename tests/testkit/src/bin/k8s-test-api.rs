//! The Kubernetes test API on its own, for trying `drkit k8s` and runbooks without a
//! cluster:
//!
//! ```text
//! cargo run -p dr-testkit --bin k8s-test-api -- --port 0 --kubeconfig /tmp/kubeconfig
//! KUBECONFIG=/tmp/kubeconfig kubectl get namespaces
//! ```
//!
//! It writes the kubeconfig (context `drkit-test`) once it listens, prints its URL, and
//! serves until killed. Its controllers step every `--tick-ms` (100; 0 pauses them);
//! `--tls` serves HTTPS with a certificate from a CA of its own, whose PEM the kubeconfig
//! carries as `certificate-authority-data`.

use std::path::PathBuf;

fn main() {
    let mut port = 0u16;
    let mut kubeconfig: Option<PathBuf> = None;
    let mut context = "drkit-test".to_owned();
    let mut tick_ms = 100u64;
    let mut tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage("--port takes a number"));
            }
            "--kubeconfig" => kubeconfig = args.next().map(PathBuf::from),
            "--tick-ms" => {
                tick_ms = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage("--tick-ms takes a number (0: controllers paused)"));
            }
            "--context" => {
                context = args
                    .next()
                    .unwrap_or_else(|| usage("--context takes a name"));
            }
            "--tls" => tls = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(kubeconfig) = kubeconfig else {
        usage("give --kubeconfig PATH")
    };
    let api = dr_testkit::k8s::K8sTestApi::start_with(&dr_testkit::k8s::Options {
        port,
        tick: (tick_ms > 0).then(|| std::time::Duration::from_millis(tick_ms)),
        tls,
    });
    api.write_kubeconfig(&kubeconfig, &context);
    println!(
        "Kubernetes test API at {} (context {context}); kubeconfig written to {}",
        api.url(),
        kubeconfig.display()
    );
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("k8s-test-api: {problem}");
    }
    eprintln!("usage: k8s-test-api [--port N] --kubeconfig PATH [--context NAME] [--tick-ms N (default 100, 0 pauses the controllers)] [--tls (HTTPS, a CA of its own in the kubeconfig)]");
    std::process::exit(2);
}
