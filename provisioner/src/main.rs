use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provisioner::aws::Target;
use provisioner::cloudformation::Engine as CloudFormation;
use provisioner::commands::Session;
use provisioner::engine::DeleteOptions;
use provisioner::output::{self, Format, Report};
use provisioner::spec::Stack;

/// Builds, checks and tears down the stack described in stack.yaml.
///
/// Exit codes: 0 success; 1 failure (bad stack.yaml, AWS error); 2 drift found (`drift` only);
/// 64 bad command line.
#[derive(Parser)]
#[command(name = "provision", version)]
struct Cli {
    /// The stack description.
    #[arg(
        long,
        global = true,
        default_value = "stack.yaml",
        env = "PROVISION_STACK"
    )]
    stack: PathBuf,
    /// Use the local emulator (AWS_ENDPOINT_URL, or http://127.0.0.1:4566) with test credentials.
    #[arg(long, global = true)]
    local: bool,
    /// AWS profile to use (otherwise AWS_PROFILE or the default chain).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Act on one system of the stack only; the other is left as it is.
    #[arg(long, global = true, value_enum)]
    only: Option<System>,
    /// Who makes the changes: provision's own AWS SDK calls, or CloudFormation (each system
    /// one CloudFormation stack, from the template `provision template` prints).
    #[arg(long, global = true, value_enum, default_value_t = Engine::Sdk, env = "PROVISION_ENGINE")]
    engine: Engine,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum System {
    /// The speech-to-text service (stt: in stack.yaml).
    Stt,
    /// The video-on-demand service (vod: in stack.yaml).
    Vod,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// provision's own AWS SDK calls, resource by resource.
    Sdk,
    /// CloudFormation change sets (plan: described, not executed), stack events as progress,
    /// CloudFormation's drift detection.
    Cloudformation,
}

#[derive(Subcommand)]
enum Command {
    /// Show what `up` would create or change, per resource, changing nothing.
    Plan,
    /// Create or update every resource so the stack matches stack.yaml.
    Up {
        /// Replace resources whose changed settings cannot be changed in place (a database
        /// gets a final snapshot first). Without it, `up` refuses and changes nothing there.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Delete everything the stack owns, in reverse dependency order.
    Down(DownFlags),
    /// Compare live settings with stack.yaml; exit 2 when anything differs.
    Drift,
    /// Print the stack's outputs (URLs, names, ids).
    Outputs,
    /// Print the stack as one CloudFormation template (no AWS call is made). What
    /// CloudFormation cannot do is listed on stderr: `provision` does it after the deploy.
    Template {
        /// The template's format.
        #[arg(long, value_enum, default_value_t = TemplateFormat::Yaml)]
        format: TemplateFormat,
    },
}

#[derive(clap::Args)]
struct DownFlags {
    /// Also delete objects in the stack's buckets that the stack did not put there.
    #[arg(long)]
    delete_data: bool,
    /// Delete the database without taking a final snapshot (its data is lost).
    #[arg(long)]
    skip_final_snapshot: bool,
    /// Turn off the database's deletion protection (on by default on AWS) so it can be
    /// deleted. Without it, `down` refuses to delete a protected database. The final
    /// snapshot is still taken unless --skip-final-snapshot is given too.
    #[arg(long)]
    disable_deletion_protection: bool,
}

impl From<DownFlags> for DeleteOptions {
    fn from(flags: DownFlags) -> DeleteOptions {
        DeleteOptions {
            delete_data: flags.delete_data,
            skip_final_snapshot: flags.skip_final_snapshot,
            disable_deletion_protection: flags.disable_deletion_protection,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TemplateFormat {
    Yaml,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // stack.yaml is read and checked before any AWS call.
    let mut stack = Stack::load(&cli.stack)?;
    match cli.only {
        Some(System::Stt) => stack.vod = None,
        Some(System::Vod) => stack.stt = Default::default(),
        None => {}
    }
    if let Command::Template { format } = cli.command {
        let template = provisioner::template::for_stack(stack)?;
        print!(
            "{}",
            match format {
                TemplateFormat::Yaml => provisioner::template::to_yaml(&template),
                TemplateFormat::Json => provisioner::template::to_json(&template),
            }
        );
        for (resource, why) in &template.after_deploy {
            eprintln!("not in the template, done by provision after the deploy: {resource}: {why}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let target = Target {
        local: cli.local,
        profile: cli.profile,
    };
    if cli.engine == Engine::Cloudformation {
        return with_cloudformation(cli.command, cli.output, stack, &target).await;
    }
    let session = Session::open(stack, &target, cli.output == Format::Text).await?;
    let report = match cli.command {
        Command::Plan => session.plan().await,
        Command::Up { allow_replace } => session.up(allow_replace).await,
        Command::Down(flags) => session.down(flags.into()).await,
        Command::Drift => session.drift().await,
        Command::Template { .. } => unreachable!("handled before connecting"),
        Command::Outputs => {
            let report = session.plan().await;
            let outputs = report
                .outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            output::print(cli.output, &OutputsOnly(&outputs));
            return Ok(if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    Ok(finish(cli.output, &report))
}

/// Prints the report; the exit code follows it.
fn finish(format: Format, report: &Report) -> ExitCode {
    output::print(format, report);
    if report.failed() {
        ExitCode::FAILURE
    } else if report.drifted == Some(true) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

async fn with_cloudformation(
    command: Command,
    format: Format,
    stack: Stack,
    target: &Target,
) -> anyhow::Result<ExitCode> {
    let engine = CloudFormation::open(stack, target, format == Format::Text).await?;
    let report = match command {
        Command::Plan => engine.plan().await,
        Command::Up { allow_replace } => engine.up(allow_replace).await,
        Command::Down(flags) => engine.down(flags.into()).await,
        Command::Drift => engine.drift().await,
        Command::Outputs => {
            output::print(format, &OutputsOnly(&engine.outputs().await?));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Template { .. } => unreachable!("handled before connecting"),
    };
    Ok(finish(format, &report))
}

#[derive(serde::Serialize)]
struct OutputsOnly<'a>(&'a std::collections::BTreeMap<String, String>);

impl std::fmt::Display for OutputsOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in self.0 {
            writeln!(f, "{k} = {v}")?;
        }
        Ok(())
    }
}
