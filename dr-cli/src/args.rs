//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dr_core::repo::retention::Tier;
use dr_pg::wal::WalSelection;

/// drkit: backups that restore, failovers that prove themselves.
#[derive(Debug, Parser)]
#[command(name = "drkit", version, about, long_about = None)]
pub struct Cli {
    /// Repository URL: file:///path, s3://bucket/prefix, memory://name.
    #[arg(long, global = true, env = "DRKIT_REPO")]
    pub repo: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Also write the outcome here as one JSON object of at most 4 KiB: the command, its
    /// exit status, the error or the result's figures (a run's id and outcome, a
    /// drill's RTO and RPO). /dev/termination-log in a Kubernetes pod, where `kubectl
    /// describe` and `kubectl get pod -o jsonpath='{..terminated.message}'` show it.
    #[arg(long, global = true, env = "DRKIT_RESULT_FILE", value_name = "FILE")]
    pub result_file: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the repository.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up a Postgres database (pg_dump) or a Redis server (its RDB): deduplicated,
    /// compressed, encrypted.
    Backup(BackupArgs),
    /// Back up files and folders (deduplicated, compressed, encrypted; what tar keeps).
    BackupFiles(BackupFilesArgs),
    /// Restore a files snapshot into a folder.
    RestoreFiles(RestoreFilesArgs),
    /// Restore a Redis snapshot: into a running server key by key, or as the RDB of a
    /// stopped server's data folder.
    RestoreRedis(RestoreRedisArgs),
    /// Object buckets: check a bucket's replica.
    #[command(subcommand)]
    S3(S3Command),
    /// Git repositories: bundle one (every branch and tag) into the repository, or
    /// clone a bundle back.
    #[command(subcommand)]
    Git(GitCommand),
    /// List snapshots.
    Snapshots,
    /// Restore a snapshot into a Postgres database.
    Restore(RestoreArgs),
    /// Check a snapshot: re-read every chunk, or restore it into a scratch database and test it.
    Verify(VerifyArgs),
    /// Archive one WAL file (PostgreSQL's archive_command: `drkit wal-push %p`).
    WalPush {
        /// The file PostgreSQL passes as %p.
        path: PathBuf,
    },
    /// Fetch one WAL file (PostgreSQL's restore_command: `drkit wal-fetch %f %p`).
    WalFetch {
        /// The file name PostgreSQL asks for (%f).
        name: String,
        /// Where to write it (%p).
        dest: PathBuf,
        /// Segments to fetch ahead in parallel into a spool folder beside DEST.
        #[arg(long, default_value_t = 8)]
        prefetch: usize,
    },
    /// Take a physical base backup (pg_basebackup) into the repository.
    Basebackup {
        /// postgres://user:password@host:port/ (a user with REPLICATION).
        server: String,
        /// Give up when the server's archiver has been failing this long (e.g. 10m, 1h):
        /// the backup is only usable once its WAL is archived, and PostgreSQL would wait
        /// for that forever.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        archive_timeout: Duration,
    },
    /// Recover a cluster to a point in time from a base backup and the WAL archive.
    Pitr(PitrArgs),
    /// Check the WAL archive has no gaps from each base backup on; print the window.
    WalVerify,
    /// Remove snapshots a calendar retention policy drops, then unreferenced chunks and WAL.
    Prune(PruneArgs),
    /// Per source: newest snapshot, newest verified, data at risk; checked against objectives.
    Status(StatusArgs),
    /// Copy snapshots to a second repository (another region or provider), deduplicated.
    Copy(CopyArgs),
    /// Raw objects in the store at --repo (no repository needed): list, upload, download.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Amazon RDS: status, promotion, point-in-time restore, replicas, snapshots.
    Rds(AwsArgs<RdsCommand>),
    /// Route 53: show records, fail over, shift weights, set records, health checks.
    Dns(AwsArgs<DnsCommand>),
    /// AWS Secrets Manager: what a secret holds (its version, format, keys and length;
    /// never its value).
    Secrets(AwsArgs<SecretsCommand>),
    /// Kubernetes: scale, rollouts, environment variables, ConfigMaps (names and flags
    /// as kubectl's); every change read back, `--dry-run` shows it without making it.
    K8s(K8sArgs),
    /// Start a throwaway Postgres, back it up, drop it, restore it, verify it; then a
    /// failover drill (an embedded runbook) that reports its measured RTO and RPO.
    Demo(DemoArgs),
    /// Check a runbook and show what each step would change in live systems (no change).
    Plan(PlanArgs),
    /// Run a runbook (journaled in the repository, under its lock), or resume a run.
    Run(RunArgs),
    /// Run a drill: its sandbox set up, a canary writing, the disaster, the recovery, the
    /// checks that say it is back, the teardown; reports the RTO and RPO achieved.
    Drill(DrillArgs),
    /// A run's report from its journal alone: json, md, html, junit or postmortem; a
    /// signed evidence bundle with --evidence.
    Report(ReportArgs),
    /// Evidence bundles: make a signing key, verify a bundle.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// List runs, or show one run's timeline.
    Runs {
        /// `show RUN-ID`.
        #[command(subcommand)]
        command: Option<RunsCommand>,
        /// The runs' lock is a Kubernetes Lease, k8s:CONTEXT/NAMESPACE/NAME (as given to
        /// `drkit run --lock`): read it to tell running runs from stopped ones.
        #[arg(long, global = true)]
        lock: Option<String>,
    },
    /// About runbooks: the actions and target kinds this build has.
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// SQL on a live server, as the `sql.*` and `pg.ready` steps run it.
    #[command(subcommand)]
    Sql(SqlCommand),
}

/// `drkit sql` subcommands.
#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// Run statements: in one transaction, or each on its own when one cannot run in a
    /// transaction (DROP/CREATE DATABASE, VACUUM, … CONCURRENTLY).
    Exec {
        /// postgres://user:password@host:port/database.
        url: String,
        /// The statements, in order.
        #[arg(required = true)]
        sql: Vec<String>,
        /// Run them in one transaction (refused if one cannot run in a transaction).
        #[arg(long, conflicts_with = "no_transaction")]
        transaction: bool,
        /// Run each on its own.
        #[arg(long)]
        no_transaction: bool,
    },
    /// Run one read-only query; print its rows by column name.
    Query {
        /// postgres://user:password@host:port/database.
        url: String,
        /// The query.
        sql: String,
        /// Most rows kept.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Wait until the server accepts connections and answers a query.
    Ready {
        /// postgres://user:password@host:port/database.
        url: String,
        /// Longest wait.
        #[arg(long, default_value = "1m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// `drkit runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run's timeline.
    Show {
        /// The run's id, or a unique prefix of it.
        id: String,
    },
}

/// `drkit runbook` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// The actions (with parameters and outputs) and target kinds.
    Actions {
        /// Only this action.
        name: Option<String>,
        /// Print the whole reference as Markdown (docs/actions.md).
        #[arg(long, conflicts_with = "name")]
        markdown: bool,
    },
    /// The JSON Schema of the runbook format, for editors (e.g. yaml-language-server).
    Schema,
    /// Check a runbook file without a repository or any live system: its format, actions
    /// and parameters, targets, references and the graph of needs (exit 1 on a problem).
    Check {
        /// The runbook (YAML).
        file: std::path::PathBuf,
    },
}

/// `drkit plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The runbook (YAML).
    pub file: PathBuf,
    /// A variable, NAME=VALUE, as text unless the variable declares a `type:`; repeatable.
    #[arg(long = "var", value_parser = parse_tag)]
    pub vars: Vec<(String, String)>,
    /// planned or forced.
    #[arg(long, default_value = "planned")]
    pub mode: dr_core::runbook::Mode,
}

/// `drkit run`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["file", "resume"]))]
pub struct RunArgs {
    /// The runbook (YAML).
    pub file: Option<PathBuf>,
    /// Resume this run (from its frozen runbook), on any machine that opens the repository.
    #[arg(long)]
    pub resume: Option<String>,
    /// A variable, NAME=VALUE; repeatable.
    #[arg(long = "var", value_parser = parse_tag)]
    pub vars: Vec<(String, String)>,
    /// planned (guards hold) or forced (the primary is gone: guards are noted, not held).
    #[arg(long, default_value = "planned")]
    pub mode: dr_core::runbook::Mode,
    /// Approve every approval step.
    #[arg(long)]
    pub yes: bool,
    /// Approve this approval step; repeatable.
    #[arg(long)]
    pub approve: Vec<String>,
    /// On resume: run this in-flight step again; repeatable.
    #[arg(long)]
    pub rerun: Vec<String>,
    /// On resume: count this in-flight step as done (it took effect) without running it again; repeatable.
    #[arg(long)]
    pub skip: Vec<String>,
    /// On resume: the machine running the run is dead. Waits until its lease runs out
    /// unrenewed, then takes the run over (journaled).
    #[arg(long, requires = "resume")]
    pub take_over: bool,
    /// How long the run's lock lasts if this process dies (renewed while it runs).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub lock_ttl: Duration,
    /// Take the run's lock on a Kubernetes Lease, k8s:CONTEXT/NAMESPACE/NAME, instead of
    /// in the store (needed where the store ignores create-only writes, e.g. garage);
    /// k8s:in-cluster/NAMESPACE/NAME inside a pod, with its service account.
    #[arg(long)]
    pub lock: Option<String>,
    /// Run FILE as schedule NAME (a CronJob's name): resume the schedule's unfinished run
    /// if there is one, else start a new one; exit 0 doing nothing when another process
    /// runs the schedule now.
    #[arg(
        long,
        value_name = "NAME",
        requires = "file",
        conflicts_with = "resume"
    )]
    pub resume_or_start: Option<String>,
    /// With --resume-or-start: this firing of the schedule (a Job's name); a firing whose
    /// run has ended is not run again.
    #[arg(long, value_name = "ID", requires = "resume_or_start")]
    pub occurrence: Option<String>,
}

/// `drkit drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// How the run goes: FILE (a runbook with a `drill:` section) or --resume RUN, and
    /// the flags of `drkit run`.
    #[command(flatten)]
    pub run: RunArgs,
    /// Keep the canary's rows (schema drkit_canary) instead of dropping them at teardown.
    #[arg(long)]
    pub keep_canary: bool,
    /// Write the report as a self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
    /// Append one line of figures (time, runbook, kind, run, outcome, rto_seconds,
    /// rpo_seconds, objectives_met) to this CSV file; its header once.
    #[arg(long, value_name = "FILE")]
    pub metrics_csv: Option<PathBuf>,
}

/// What `drkit report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The report as JSON (what --json prints).
    Json,
    /// Markdown.
    Md,
    /// One self-contained HTML page: timeline, marks, verdicts.
    Html,
    /// JUnit XML: each step a test case, each missed objective a failure.
    Junit,
    /// A post-incident draft in Markdown, pre-filled.
    Postmortem,
}

/// `drkit report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (its id or the start of it; `drkit runs` lists them).
    pub run: String,
    /// What to write.
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// Write it to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --format postmortem: a template (minijinja; the report's fields as
    /// `report`, e.g. `{{ report.rto.achieved_seconds }}`) instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Also append the run's line of figures to this CSV file (its header once).
    #[arg(long, value_name = "FILE")]
    pub metrics_csv: Option<PathBuf>,
    /// Also write a signed evidence bundle (report, events, the chain's head) here.
    #[arg(long, value_name = "FILE", requires = "sign_key")]
    pub evidence: Option<PathBuf>,
    /// The Ed25519 signing key for --evidence (`drkit evidence keygen` makes one).
    #[arg(long, value_name = "KEY", requires = "evidence")]
    pub sign_key: Option<PathBuf>,
    /// The runs' lock is a Kubernetes Lease (as given to `drkit run --lock`).
    #[arg(long)]
    pub lock: Option<String>,
}

/// `drkit evidence …`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Make an Ed25519 signing key (hex, mode 0600) and its public key (FILE.pub).
    Keygen {
        /// Where to write the signing key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a bundle: the chain of events, its head, the signature, the report.
    Verify {
        /// The bundle `drkit report --evidence` wrote.
        file: PathBuf,
        /// The public key (`drkit evidence keygen` wrote it as FILE.pub).
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
    },
}

/// `drkit pitr`.
#[derive(Debug, Args)]
pub struct PitrArgs {
    /// The data directory to create (missing or empty).
    #[arg(long)]
    pub pgdata: PathBuf,
    /// Recover to this moment (RFC 3339, e.g. 2026-12-01T03:15:00Z).
    #[arg(long, group = "target", required = true)]
    pub target_time: Option<jiff::Timestamp>,
    /// Recover to this WAL position (e.g. 0/3000028).
    #[arg(long, group = "target")]
    pub target_lsn: Option<dr_core::target::Lsn>,
    /// Recover to a restore point made with pg_create_restore_point.
    #[arg(long, group = "target")]
    pub target_name: Option<String>,
    /// Recover to the end of the archived WAL.
    #[arg(long, group = "target")]
    pub latest: bool,
    /// Use this base backup instead of the newest one before the target.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Start the server and wait until it has promoted.
    #[arg(long)]
    pub start: bool,
    /// Extra postgresql.auto.conf setting, KEY=VALUE (e.g. port=5433); repeatable.
    #[arg(long = "set", value_parser = parse_tag)]
    pub settings: Vec<(String, String)>,
    /// Put this postgresql.conf in place (for clusters whose config lives outside the data directory).
    #[arg(long)]
    pub postgresql_conf: Option<PathBuf>,
    /// Longest wait for recovery to finish (e.g. 1h, 90m; a bare number is seconds).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// With --start: connect here after promotion and run amcheck and the --check queries.
    #[arg(long, requires = "start")]
    pub check_dsn: Option<String>,
    /// SQL that must return true or a non-zero count after promotion; repeatable.
    #[arg(long = "check", requires = "check_dsn")]
    pub checks: Vec<String>,
    /// Put the tablespace that was at OLD at NEW instead (absolute paths); repeatable.
    /// Tablespaces not named go back where they were, which must be missing or empty.
    #[arg(long = "tablespace-mapping", value_parser = parse_mapping)]
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
}

/// `drkit prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Take the prune lock on a Kubernetes Lease, k8s:CONTEXT/NAMESPACE/NAME, instead of
    /// in the store (needed where the store ignores create-only writes, e.g. garage).
    #[arg(long)]
    pub lock: Option<String>,
    /// Keep the newest N of each source and kind.
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest of each of the last D days with snapshots.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    /// Keep the newest of each of the last W ISO weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// Keep the newest of each of the last M months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// Keep the newest of each of the last Y years.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: usize,
    /// Keep everything younger than this (e.g. 36h, 14d).
    #[arg(long, value_parser = parse_duration)]
    pub keep_within: Option<Duration>,
    /// Calendar time zone for days, weeks, months and years (default UTC).
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// Leave unreferenced chunks younger than this (default 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub grace: Duration,
    /// Print each snapshot with keep/remove and the reason; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `drkit status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// TOML file of objectives: [[service]] name, source (a substring of the snapshot
    /// source), rpo, rto, verified_within (e.g. "15m", "1h", "7d"); runbook and
    /// drilled_within (e.g. "90d"): how recently that runbook must have been drilled.
    #[arg(long)]
    pub objectives: Option<PathBuf>,
}

/// `drkit copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshot ids (or unique prefixes) or `latest`; every snapshot when omitted.
    pub snapshots: Vec<String>,
    /// Destination repository URL.
    #[arg(long)]
    pub to: String,
    /// Create the destination as a replica (same keys: chunks copy as stored bytes).
    #[arg(long)]
    pub init: bool,
    /// Only the newest snapshot of each source per calendar period (UTC): daily,
    /// weekly, monthly or yearly.
    #[arg(long)]
    pub tier: Option<Tier>,
    /// Only snapshots of this kind (e.g. pg_dump).
    #[arg(long)]
    pub kind: Option<String>,
    /// Archived WAL to copy first: `all` (point-in-time recovery in the copy; the default
    /// when every snapshot is copied), `needed` (what the copied base backups need to be
    /// consistent; the default with snapshots named, --tier or --kind) or `none`.
    #[arg(long)]
    pub wal: Option<WalSelection>,
}

/// `drkit store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// List objects under a prefix.
    Ls {
        /// Key prefix.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Upload a file (or - for stdin) as KEY.
    Put {
        /// Object key.
        key: String,
        /// Local file, or - for standard input.
        file: PathBuf,
    },
    /// Download KEY into a file (or - for stdout).
    Get {
        /// Object key.
        key: String,
        /// Local file, or - for standard output.
        file: PathBuf,
    },
}

/// Connection flags shared by the Kubernetes commands.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace (default: the context's).
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,
    /// Use the pod's service account (KUBERNETES_SERVICE_HOST and
    /// /var/run/secrets/kubernetes.io/serviceaccount) instead of a kubeconfig.
    #[arg(long, global = true, conflicts_with_all = ["context", "kubeconfig"])]
    pub in_cluster: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: K8sCommand,
}

/// What a rendered Job runs.
#[derive(Debug, Subcommand)]
pub enum RenderWork {
    /// `drkit backup` of the database URL in the Secret's key --source-key.
    Backup {
        /// The Secret's key that holds the database URL (e.g. DATABASE_URL).
        #[arg(long, value_name = "KEY")]
        source_key: String,
        #[command(flatten)]
        common: RenderArgs,
    },
    /// `drkit run FILE --resume-or-start NAME`: a runbook as the schedule's keyed run.
    Run {
        /// The runbook (YAML): put into a ConfigMap; its Kubernetes steps tell the RBAC.
        file: PathBuf,
        #[command(flatten)]
        common: RenderArgs,
    },
    /// `drkit drill FILE --resume-or-start NAME`: a drill on a schedule.
    Drill {
        /// The drill runbook (YAML).
        file: PathBuf,
        #[command(flatten)]
        common: RenderArgs,
    },
    /// `drkit prune` with the retention flags given after `--`.
    Prune {
        #[command(flatten)]
        common: RenderArgs,
        /// `drkit prune` flags, after `--` (`-- --keep-daily 7 --keep-weekly 4`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// What every rendered Job shares.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The CronJob's (or Job's) name, and the prefix of the other objects.
    #[arg(long)]
    pub name: String,
    /// A cron schedule ("0 2 * * *"): a CronJob; none: one Job.
    #[arg(long)]
    pub schedule: Option<String>,
    /// The CronJob's time zone (Europe/Lisbon).
    #[arg(long)]
    pub time_zone: Option<String>,
    /// The image with the drkit binary and the PostgreSQL client programs.
    #[arg(long)]
    pub image: String,
    /// The Secret whose keys become the pod's environment (DRKIT_PASSWORD, AWS keys,
    /// database URLs, the runbook's secret variables).
    #[arg(long)]
    pub secret: String,
    /// Environment that is not secret, NAME=VALUE (AWS_REGION, AWS_ENDPOINT_URL); repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The Lease the run locks (default: --name).
    #[arg(long)]
    pub lease: Option<String>,
    /// How long the lock lasts unless renewed: how soon a killed pod's run is taken over.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub lock_ttl: Duration,
    /// Longest a Job may run (activeDeadlineSeconds).
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// How long a finished Job is kept.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub keep_finished: Duration,
}

/// `drkit k8s` subcommands.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print the manifests that run drkit in the cluster: a CronJob (with --schedule) or a
    /// Job, its ServiceAccount and least RBAC, the runbook's ConfigMap; no cluster is
    /// contacted. `kubectl apply -f -` takes them.
    #[command(subcommand)]
    Render(RenderWork),
    /// Set a Deployment's or StatefulSet's replicas (deployment/NAME, sts/NAME).
    Scale {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
        /// The replica count.
        #[arg(long)]
        replicas: i32,
        /// Wait until the replicas are ready (or, at 0, the pods gone).
        #[arg(long)]
        wait: bool,
        /// Longest wait.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// Show the change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rollouts: undo, status, restart.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Set environment variables of a workload's containers: NAME=VALUE, NAME- removes.
    SetEnv {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
        /// NAME=VALUE to set, NAME- to remove.
        #[arg(required = true)]
        vars: Vec<String>,
        /// The container (default: every container).
        #[arg(long, short = 'c')]
        container: Option<String>,
        /// Show the change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// ConfigMaps.
    #[command(subcommand)]
    Configmap(ConfigMapCommand),
    /// Secrets: set, rotate, restore (values are never printed).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Point an Ingress at a maintenance Service (on) or put it back exactly (off).
    Maintenance {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// The Ingress.
        ingress: String,
        /// The maintenance Service.
        #[arg(long, default_value = "drkit-maintenance")]
        service: String,
        /// Its port.
        #[arg(long, default_value_t = 80)]
        port: i32,
        /// Create the maintenance Deployment and Service from this image.
        #[arg(long)]
        image: Option<String>,
        /// Show the change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export a namespace (-n), or several (--namespaces) with the cluster-wide objects
    /// they need (--cluster), into the repository (--repo) as a snapshot.
    Export {
        /// Several namespaces into one snapshot (shop,billing).
        #[arg(long, value_delimiter = ',')]
        namespaces: Vec<String>,
        /// With what the namespaces need of the cluster: the Namespaces, the StorageClasses
        /// their claims use, ClusterRoles and ClusterRoleBindings of their RoleBindings
        /// and ServiceAccounts, CustomResourceDefinitions and the custom resources in them.
        #[arg(long)]
        cluster: bool,
        /// Only these kinds (deployments,configmaps,…).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        /// Only objects with these labels.
        #[arg(long, short = 'l')]
        selector: Option<String>,
    },
    /// Apply manifests from files and folders (-f, as kubectl apply -f), or a namespace
    /// snapshot of the repository (latest by default): all of it, or some kinds and
    /// labels; what others need first, every kind and namespace checked before anything
    /// is applied.
    Apply {
        /// The snapshot (id or prefix; default latest).
        #[arg(conflicts_with = "files")]
        snapshot: Option<String>,
        /// Manifest files or folders (read recursively: *.yaml, *.yml, *.json); repeatable.
        #[arg(long = "filename", short = 'f')]
        files: Vec<std::path::PathBuf>,
        /// Only these kinds (Deployment, configmaps, …).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        /// Only objects with these labels (app=shop,tier!=cache).
        #[arg(long, short = 'l')]
        selector: Option<String>,
        /// With latest: the export's namespace (or source), when the repository holds
        /// exports of several.
        #[arg(long)]
        source: Option<String>,
        /// OLD=NEW namespace renames; repeatable.
        #[arg(long = "namespace-map")]
        namespace_map: Vec<String>,
        /// Diff against what is live and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait for the workloads.
        #[arg(long)]
        wait: bool,
        /// Longest wait.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Namespaces: create (labels), delete (and wait until gone).
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Wait until every Deployment of the namespace is available.
    WaitAvailable {
        /// Longest wait.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Pods: delete one and wait until its controller has a ready replacement.
    #[command(subcommand)]
    Pod(PodCommand),
    /// The last lines of each container of a pod (POD or pod/POD).
    Logs {
        /// The pod.
        pod: String,
        /// Lines per container.
        #[arg(long, default_value_t = 100)]
        tail: i64,
    },
}

/// `drkit k8s namespace` subcommands.
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create it (an existing one is left as it is).
    Create {
        /// NAME or namespace/NAME.
        name: String,
        /// KEY=VALUE labels; repeatable.
        #[arg(long = "label", short = 'l', value_parser = parse_tag)]
        labels: Vec<(String, String)>,
    },
    /// Delete it with everything in it, and wait until it is gone.
    Delete {
        /// NAME or namespace/NAME.
        name: String,
        /// Longest wait.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// `drkit k8s pod` subcommands.
#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Delete a pod and wait until its controller has replaced it with a ready one.
    Delete {
        /// POD or pod/POD.
        name: String,
        /// Longest wait.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// `drkit k8s secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set KEY=VALUE keys (or --from-env-file), then restart the workloads that use it.
    Set {
        /// The Secret.
        name: String,
        /// KEY=VALUE.
        pairs: Vec<String>,
        /// KEY=VALUE lines.
        #[arg(long)]
        from_env_file: Option<PathBuf>,
        /// Create it when missing.
        #[arg(long)]
        create: bool,
        /// Do not restart the workloads that use it.
        #[arg(long)]
        no_restart: bool,
        /// Show the change (key names) without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Give keys fresh random values, then restart the workloads that use it.
    Rotate {
        /// The Secret.
        name: String,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Random bytes per value.
        #[arg(long, default_value_t = 32)]
        length: usize,
        /// Do not restart the workloads that use it.
        #[arg(long)]
        no_restart: bool,
        /// Show the change (key names) without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Put back what the last set or rotate replaced.
    Restore {
        /// The Secret.
        name: String,
    },
}

/// `drkit k8s rollout` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Go back to the previous revision, or --to-revision N.
    Undo {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
        /// The revision (see `kubectl rollout history`).
        #[arg(long)]
        to_revision: Option<i64>,
        /// Show the change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Wait until the rollout is done.
    Status {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
        /// Longest wait.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// New pods for the workload (the restartedAt annotation).
    Restart {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
    },
    /// The revisions and their images, and which one runs (as `rollout undo` counts them).
    History {
        /// deployment/NAME or statefulset/NAME.
        workload: String,
    },
}

/// `drkit k8s configmap` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigMapCommand {
    /// Set KEY=VALUE keys (and --remove KEY); prints the old values.
    Set {
        /// The ConfigMap.
        name: String,
        /// KEY=VALUE.
        pairs: Vec<String>,
        /// Keys to remove.
        #[arg(long)]
        remove: Vec<String>,
        /// Show the change without making it.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Connection flags shared by the AWS commands.
#[derive(Debug, Args)]
pub struct AwsArgs<C: Subcommand> {
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Endpoint override, e.g. http://127.0.0.1:5000 (default: AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Longest wait for a change to complete (e.g. 30m; a bare number is seconds).
    #[arg(long, global = true, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: C,
}

/// `drkit rds` subcommands.
#[derive(Debug, Subcommand)]
pub enum RdsCommand {
    /// Status, endpoint, replication source, latest restorable time.
    Describe {
        /// Instance identifier.
        id: String,
    },
    /// Promote a read replica and wait until it is a writable, available primary.
    Promote {
        /// Instance identifier of the replica.
        id: String,
    },
    /// Create a read replica (in --region) of a source instance (an ARN across regions).
    Replica {
        /// The new replica's identifier.
        id: String,
        /// Source instance id or ARN.
        #[arg(long)]
        source: String,
        /// Instance class (default: the source's).
        #[arg(long)]
        instance_class: Option<String>,
        /// Request token (e.g. a run id): running the command again with it adopts the
        /// replica the first run created.
        #[arg(long)]
        token: Option<String>,
    },
    /// Restore an instance to a point in time into a new instance, and wait.
    Pitr {
        /// Source instance identifier.
        source: String,
        /// The new instance's identifier.
        #[arg(long)]
        to: String,
        /// Restore to this time (RFC 3339, e.g. 2026-12-01T03:15:00Z).
        #[arg(long, group = "when", required = true)]
        time: Option<jiff::Timestamp>,
        /// Request token (e.g. a run id): running the command again with it adopts the
        /// instance the first run created.
        #[arg(long)]
        token: Option<String>,
        /// Restore to the latest restorable time.
        #[arg(long, group = "when")]
        latest: bool,
    },
    /// Take a snapshot and wait for it.
    Snapshot {
        /// Instance identifier.
        id: String,
        /// Snapshot identifier.
        #[arg(long)]
        name: String,
    },
    /// List snapshots (of one instance, or all).
    Snapshots {
        /// Instance identifier.
        id: Option<String>,
    },
    /// Copy a snapshot into --region (give the source's ARN across regions).
    CopySnapshot {
        /// Source snapshot id or ARN.
        source: String,
        /// The copy's identifier.
        #[arg(long)]
        to: String,
    },
    /// Restore a snapshot into a new instance and wait.
    RestoreSnapshot {
        /// Snapshot identifier.
        snapshot: String,
        /// The new instance's identifier.
        #[arg(long)]
        to: String,
    },
}

/// Which records a `drkit dns` command acts on.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Hosted zone name (example.com) or id.
    #[arg(long)]
    pub zone: String,
    /// Record name (app.example.com).
    #[arg(long)]
    pub name: String,
    /// Record type.
    #[arg(long = "type", default_value = "CNAME")]
    pub record_type: String,
}

/// `drkit secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Read a secret as a runbook's `secretsmanager.get` step would, and say what it
    /// holds: version, stages, format, the keys of a JSON secret, the value's length.
    /// The value itself is never printed.
    Get {
        /// The secret's name or ARN (prod/db).
        secret: String,
        /// One key of a JSON secret (password).
        #[arg(long)]
        key: Option<String>,
        /// Version stage (default AWSCURRENT; AWSPREVIOUS: before the last rotation).
        #[arg(long, conflicts_with = "version_id")]
        stage: Option<String>,
        /// One version by its id.
        #[arg(long)]
        version_id: Option<String>,
    },
}

/// `drkit dns` subcommands.
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Show the records of a name.
    Show(RecordArgs),
    /// Send all traffic to one set: the PRIMARY of a failover pair, or all the weight.
    Failover {
        /// Which records.
        #[command(flatten)]
        record: RecordArgs,
        /// Set identifier to send traffic to.
        #[arg(long)]
        to: String,
    },
    /// Set weights of a weighted set: SET=WEIGHT,SET=WEIGHT.
    Weights {
        /// Which records.
        #[command(flatten)]
        record: RecordArgs,
        /// e.g. use1=0,usw2=100.
        weights: String,
    },
    /// Point a simple record at these values (created if missing).
    Set {
        /// Which records.
        #[command(flatten)]
        record: RecordArgs,
        /// Values (addresses, host names).
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Store every record set of a hosted zone in the repository (a snapshot of kind dns).
    Export {
        /// The zone: its name (example.com) or id.
        #[arg(long)]
        zone: String,
    },
    /// Restore a zone snapshot: shows each create, change and delete, UPSERTs in batches,
    /// waits until INSYNC, reads every record back.
    Import {
        /// Snapshot id (or a unique prefix), or `latest` (of --source when there are several
        /// zones).
        snapshot: String,
        /// Restore into this zone (name or id) instead of the exported one; names move to it.
        #[arg(long)]
        zone: Option<String>,
        /// Also delete record sets the zone has and the snapshot does not.
        #[arg(long)]
        delete: bool,
        /// Show the plan only.
        #[arg(long)]
        dry_run: bool,
        /// With `latest`: the zone, as `drkit snapshots` shows it (route53:example.com.).
        #[arg(long)]
        source: Option<String>,
    },
    /// Create a health check and print its id.
    HealthCheck {
        /// HTTP, HTTPS or TCP.
        #[arg(long, default_value = "HTTPS")]
        kind: String,
        /// Host name to probe.
        #[arg(long)]
        fqdn: Option<String>,
        /// IP address to probe.
        #[arg(long)]
        ip: Option<String>,
        /// Port.
        #[arg(long, default_value_t = 443)]
        port: u16,
        /// Path for HTTP(S).
        #[arg(long)]
        path: Option<String>,
    },
}

/// Repository subcommands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository at --repo.
    Init(InitArgs),
    /// Add a secret that also opens the repository (a key slot), e.g. a key file for
    /// archive_command beside the passphrase; the current secret comes from DRKIT_*.
    AddKey(AddKeyArgs),
    /// List the key slots.
    Keys,
    /// Remove a key slot; the repository's own secret and other slots keep working.
    RemoveKey {
        /// The slot id (from `drkit repo keys`).
        id: String,
    },
}

/// `drkit repo add-key`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("new").required(true).args(["generate_key_file", "key_file", "password_file"]))]
pub struct AddKeyArgs {
    /// Create a new random key file at this path and add it.
    #[arg(long)]
    pub generate_key_file: Option<PathBuf>,
    /// Add this existing key file (32 random bytes, raw or as 64 hex digits).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Add the passphrase in this file (its first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// What the slot is for, shown by `drkit repo keys`.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `drkit repo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Store data unencrypted (otherwise DRKIT_PASSWORD, DRKIT_PASSWORD_FILE or DRKIT_KEY_FILE is required).
    #[arg(long)]
    pub no_encryption: bool,
    /// Create a new random key file at this path and encrypt with it.
    #[arg(long, conflicts_with = "no_encryption")]
    pub generate_key_file: Option<PathBuf>,
    /// zstd compression level, 1-19.
    #[arg(long, default_value_t = 3)]
    pub compression_level: i32,
}

/// `drkit backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// postgres://user:password@host:port/database (the password may come from PGPASSWORD
    /// instead), or redis://[user:password@]host:port (its RDB, taken as a replica takes
    /// it; the password may come from REDISCLI_AUTH).
    pub database: String,
    /// Tag the snapshot, KEY=VALUE; repeatable.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Do not save roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long)]
    pub skip_globals: bool,
    /// Record no per-table row counts.
    #[arg(long, conflicts_with = "count_max_bytes")]
    pub no_row_counts: bool,
    /// Count rows only in tables up to this many bytes on disk.
    #[arg(long)]
    pub count_max_bytes: Option<u64>,
    /// Fail instead of waiting longer than this for a table lock (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub lock_wait_timeout: Option<Duration>,
    /// `streams` (tables read by parallel COPY sessions from one snapshot) or `pg-dump`
    /// (one pg_dump -Fc archive).
    #[arg(long, default_value = "streams")]
    pub format: dr_pg::LogicalFormat,
    /// Sessions reading tables at once (default: one per core).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Read tables larger than this many bytes as several ranges of pages, in parallel.
    #[arg(long, default_value_t = dr_pg::DEFAULT_SPLIT_BYTES)]
    pub split_bytes: u64,
}

/// `drkit s3` subcommands.
#[derive(Debug, Subcommand)]
pub enum S3Command {
    /// Every object of SOURCE must be in REPLICA with the same size and ETag: names what
    /// is missing, differs or is extra, and how far behind the replica is (exit 3 when
    /// it is behind). Both listings are streamed and merged: memory stays flat.
    VerifyReplica {
        /// s3://bucket/prefix?region=… (credentials from the environment or `profile=`).
        source: String,
        /// s3://bucket/prefix?region=….
        replica: String,
        /// Objects listed per kind of problem.
        #[arg(long, default_value_t = 20)]
        list: usize,
    },
    /// Copy a folder or a bucket prefix to a bucket prefix: only what is missing or
    /// differs (size, MD5), in parallel; again after an interruption, only what is left.
    Sync {
        /// A local folder, or s3://bucket/prefix?region=….
        source: String,
        /// s3://bucket/prefix?region=….
        destination: String,
        /// Also delete what the destination has and the source does not.
        #[arg(long)]
        delete: bool,
        /// List what would be copied and deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Copies in flight at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// Read back a bucket's protection: versioning enabled, replication to the named
    /// bucket enabled, lifecycle rules present (exit 3 when something is missing).
    CheckBucket {
        /// s3://bucket?region=….
        bucket: String,
        /// Replication must be enabled to this bucket (its name or ARN).
        #[arg(long)]
        replicates_to: Option<String>,
        /// At least one lifecycle rule must be enabled.
        #[arg(long)]
        lifecycle: bool,
        /// Do not require versioning.
        #[arg(long)]
        no_versioning: bool,
    },
}

/// `drkit git` subcommands.
#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// `git bundle create --all` of a repository, stored as a snapshot of kind `git`.
    Bundle {
        /// The repository (a working tree or a bare repository).
        path: PathBuf,
        /// Tag the snapshot, KEY=VALUE; repeatable.
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Clone a bundle into a new folder, every ref as it was.
    Restore {
        /// Snapshot id (or a unique prefix), or `latest`.
        snapshot: String,
        /// The new repository's folder (missing or empty).
        #[arg(long)]
        to: PathBuf,
        /// A bare mirror, for a Git server.
        #[arg(long)]
        bare: bool,
        /// With `latest`: the repository's path as `drkit snapshots` shows it, or its name.
        #[arg(long)]
        source: Option<String>,
    },
}

/// `drkit restore-redis`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["to", "data_dir"]))]
pub struct RestoreRedisArgs {
    /// Snapshot id (or a unique prefix), or `latest` (of --source when there are several
    /// servers).
    pub snapshot: String,
    /// A running server, redis://[user:password@]host:port: every key replayed
    /// (RESTORE … REPLACE), then the key counts compared.
    #[arg(
        long,
        required_unless_present = "data_dir",
        conflicts_with = "data_dir"
    )]
    pub to: Option<String>,
    /// Or a stopped server's data folder: the RDB written there as --dbfilename.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The RDB's file name in --data-dir (the server's dbfilename).
    #[arg(long, default_value = "dump.rdb")]
    pub dbfilename: String,
    /// Into a server that holds keys, or over an existing RDB file.
    #[arg(long)]
    pub overwrite: bool,
    /// With `latest`: the server, as `drkit snapshots` shows it.
    #[arg(long)]
    pub source: Option<String>,
}

/// `drkit backup-files`.
#[derive(Debug, Args)]
pub struct BackupFilesArgs {
    /// Files and folders. One folder is stored as the snapshot's root; several paths each
    /// under its own name.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Leave out what matches this glob: without `/` a name anywhere (`*.log`,
    /// `node_modules`), with `/` a path from the root (`media/cache/*`); repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Do not cross into other file systems mounted inside the folders.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Tag the snapshot, KEY=VALUE; repeatable.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

/// `drkit restore-files`.
#[derive(Debug, Args)]
pub struct RestoreFilesArgs {
    /// Snapshot id (or a unique prefix), or `latest`: the newest files snapshot (of
    /// --source when there are several sources).
    pub snapshot: String,
    /// The folder to restore into; made when missing, refused when not empty unless
    /// --overwrite.
    #[arg(long)]
    pub to: PathBuf,
    /// Only this path inside the snapshot (relative to its root) and what is under it;
    /// repeatable.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Restore into a folder that is not empty, replacing what the snapshot holds.
    #[arg(long)]
    pub overwrite: bool,
    /// With `latest`: the source, as `drkit snapshots` shows it or by its last folder's
    /// name.
    #[arg(long)]
    pub source: Option<String>,
    /// With `latest`: the newest taken before this moment (e.g. 2026-12-01T03:00:00Z).
    #[arg(long)]
    pub before: Option<jiff::Timestamp>,
    /// With `latest`: only snapshots with this tag, KEY=VALUE; repeatable.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

/// `drkit restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix), or `latest`: the newest dump of the database
    /// --to names (or of --source).
    pub snapshot: String,
    /// Target: postgres://user:password@host:port/database.
    #[arg(long)]
    pub to: String,
    /// With `latest`: the source to restore from, as `drkit snapshots` shows it or by its
    /// database name (needed when the target's name matches no source, or several).
    #[arg(long)]
    pub source: Option<String>,
    /// With `latest`: the newest taken before this moment (e.g. 2026-12-01T03:00:00Z).
    #[arg(long)]
    pub before: Option<jiff::Timestamp>,
    /// With `latest`: only snapshots with this tag, KEY=VALUE; repeatable.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// With `latest`: one at random among those finished within this long (a restore
    /// test of a random backup), e.g. 30d.
    #[arg(long, value_parser = parse_duration)]
    pub random_within: Option<Duration>,
    /// Restore into <db>_restored, then rename <db> to <db>_old and <db>_restored to <db>.
    #[arg(long, group = "mode")]
    pub swap: bool,
    /// Replace the snapshot's objects inside the existing database.
    #[arg(long, group = "mode")]
    pub clean: bool,
    /// The database must not exist; create it.
    #[arg(long, group = "mode")]
    pub create: bool,
    /// Sessions loading tables at once and building indexes (default: one per core); for
    /// a pg-dump snapshot, 1 streams to pg_restore with no local spool file.
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Also restore roles and tablespaces.
    #[arg(long)]
    pub globals: bool,
    /// Create the roles the snapshot's objects need that the server lacks (as NOLOGIN
    /// roles); without it or --globals, missing roles are refused before anything changes.
    #[arg(long)]
    pub create_roles: bool,
    /// Objects belong to the restoring user (pg_restore --no-owner).
    #[arg(long)]
    pub no_owner: bool,
    /// Skip GRANT and REVOKE (pg_restore --no-privileges).
    #[arg(long)]
    pub no_privileges: bool,
    /// With --swap, end other sessions on the old database so it can be renamed.
    #[arg(long, requires = "swap")]
    pub terminate_connections: bool,
    /// Folder for the spooled archive (a streams snapshot's schema; a pg-dump snapshot's
    /// whole dump with several jobs).
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
}

/// `drkit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot id (or a unique prefix), or `latest`; all snapshots when omitted.
    pub snapshot: Option<String>,
    /// Also restore into a scratch database on this server and check it.
    #[arg(long)]
    pub restore_into: Option<String>,
    /// With --restore-into and `latest`: the source whose newest dump is restored, by URL
    /// or database name.
    #[arg(long, requires = "restore_into")]
    pub source: Option<String>,
    /// SQL that must return true or a non-zero count after restore; repeatable.
    #[arg(long = "check", requires = "restore_into")]
    pub checks: Vec<String>,
    /// Keep the scratch database for inspection.
    #[arg(long, requires = "restore_into")]
    pub keep: bool,
}

/// `drkit demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders in the sample database (customers are a tenth of that).
    #[arg(long, default_value_t = 500_000)]
    pub rows: u64,
    /// Keep the repository folder afterwards and print where it is.
    #[arg(long)]
    pub keep_repo: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    dr_core::duration::parse(s).map_err(|e| e.to_string())
}

fn parse_mapping(s: &str) -> Result<(PathBuf, PathBuf), String> {
    let (old, new) = s
        .split_once('=')
        .ok_or_else(|| format!("tablespace mapping {s:?} is not OLD=NEW"))?;
    let (old, new) = (PathBuf::from(old), PathBuf::from(new));
    if !old.is_absolute() || !new.is_absolute() {
        return Err(format!(
            "tablespace mapping {s:?}: both sides must be absolute paths"
        ));
    }
    Ok((old, new))
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}
