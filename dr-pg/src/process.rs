//! Running the PostgreSQL programs: stderr captured for the error message, killed on drop.

use std::process::{ExitStatus, Stdio};

use dr_core::{err, Error, Result};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const STDERR_KEEP: usize = 16 * 1024;

/// A running program whose stderr is being collected.
pub(crate) struct Running {
    pub child: Child,
    name: String,
    stderr: JoinHandle<String>,
}

/// Starts `cmd` with stdin/stdout as given and stderr captured.
pub(crate) fn spawn(mut cmd: Command, name: &str, stdin: Stdio, stdout: Stdio) -> Result<Running> {
    // The PostgreSQL programs need none of drkit's own secrets.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("DRKIT_") || k.starts_with("AWS_SECRET") || k == "AWS_SESSION_TOKEN" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("starting {name}"), e))?;
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 2 * STDERR_KEEP {
                buf.drain(..buf.len() - STDERR_KEEP);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    Ok(Running {
        child,
        name: name.to_owned(),
        stderr,
    })
}

/// Takes the child's stdout as a blocking reader with a 1 MiB pipe buffer: the chunker
/// reads it on its own thread, far fewer and larger reads than through the runtime.
pub(crate) fn blocking_stdout(run: &mut Running) -> Result<std::fs::File> {
    let out = run.child.stdout.take().expect("stdout is piped");
    let fd = out
        .into_owned_fd()
        .map_err(|e| Error::io(format!("reading the output of {}", run.name), e))?;
    // Best effort: the system limit may refuse a larger pipe.
    let _ = rustix::pipe::fcntl_setpipe_size(&fd, 1 << 20);
    let file = std::fs::File::from(fd);
    Ok(file)
}

impl Running {
    /// Waits for exit; a failure becomes an error quoting the program's last words.
    pub async fn finish(mut self) -> Result<String> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| Error::io(format!("waiting for {}", self.name), e))?;
        let stderr = self.stderr.await.unwrap_or_default();
        check(&self.name, status, &stderr)?;
        Ok(stderr)
    }
}

fn check(name: &str, status: ExitStatus, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    Err(err!(
        External,
        "{name} failed ({status}): {}",
        if tail.is_empty() { "no message" } else { &tail }
    ))
}
