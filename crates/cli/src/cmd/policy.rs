//! `tagwarden policy test`: which tag would this ImagePolicy pick?

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tagwarden_api::Kind;
use tagwarden_api::{LoadOptions, Manifests, Object};
use tagwarden_policy::{Policy, PolicySpec, Verdict};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Select the latest tag from a list, as an ImagePolicy would.
    ///
    /// The selected tag is printed alone on stdout. Flags mirror `flux create
    /// image policy`; with -f they override the file's policy and filter.
    #[command(after_help = "Examples:\n  \
        tagwarden policy test --select-semver 5.0.x --tags tags.txt\n  \
        tagwarden policy test --select-numeric asc --filter-regex '^main-[a-f0-9]+-(?P<ts>[0-9]+)' --filter-extract '$ts' --tags -\n  \
        tagwarden policy test -f podinfo-policy.yaml --tags tags.txt --explain")]
    Test(TestArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// A file holding the ImagePolicy (any of v1beta1, v1beta2, v1).
    #[arg(short = 'f', long = "file", value_name = "IMAGEPOLICY.yaml")]
    file: Option<PathBuf>,
    /// Which ImagePolicy of the file, when it holds several.
    #[arg(long, value_name = "NAME", requires = "file")]
    name: Option<String>,
    /// Semver range to select by, e.g. '5.0.x', '>=1.0.0 <2.0.0', '^1.x-0'.
    #[arg(long, value_name = "RANGE", group = "select")]
    select_semver: Option<String>,
    /// Select the largest (asc) or smallest (desc) number.
    #[arg(long, value_name = "ORDER", group = "select")]
    select_numeric: Option<String>,
    /// Select the last (asc) or first (desc) tag in byte order.
    #[arg(long, value_name = "ORDER", group = "select")]
    select_alpha: Option<String>,
    /// Go regular expression; only tags it matches are considered.
    #[arg(long, value_name = "RE")]
    filter_regex: Option<String>,
    /// Template over the regex's groups ('$ts', '${1}') giving the value to order.
    #[arg(long, value_name = "TPL")]
    filter_extract: Option<String>,
    /// Tags, one per line ('-' for stdin). Lines are taken verbatim but for
    /// the line ending; empty lines are skipped.
    #[arg(long, value_name = "FILE")]
    tags: PathBuf,
    /// Print on stderr what the policy made of every tag.
    #[arg(long)]
    explain: bool,
    /// Fail on unknown fields in the file (a typo such as `sembver`)
    /// instead of warning.
    #[arg(long, requires = "file")]
    strict: bool,
}

pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Test(args) => test(args),
    }
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let spec = policy_spec(&args)?;
    let policy = Policy::new(&spec)?;
    let text = read_tags(&args.tags)?;
    let tags: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect();

    if args.explain {
        let (verdicts, _) = policy.explain(&tags);
        let mut err = std::io::stderr().lock();
        for (tag, v) in tags.iter().zip(&verdicts) {
            let line = match v {
                Verdict::FilteredOut => "filtered out: the pattern does not match".to_string(),
                Verdict::Shadowed { value, by } => {
                    format!("shadowed: '{by}' extracts the same value '{value}'")
                }
                Verdict::Unparsable { value, reason } => format!("unparsable '{value}': {reason}"),
                Verdict::OutOfRange { value } => format!("outside the range: '{value}'"),
                Verdict::Candidate { value } => format!("candidate '{value}'"),
                Verdict::Selected { value } => format!("SELECTED '{value}'"),
            };
            writeln!(err, "{tag}\t{line}")?;
        }
    }

    let selected = policy.select(&tags)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", selected.tag)?;
    Ok(ExitCode::SUCCESS)
}

fn read_tags(path: &PathBuf) -> Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading tags from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading tags from {}", path.display()))?;
    }
    Ok(text)
}

/// The file's policy (if any) with the flags laid over it.
fn policy_spec(args: &TestArgs) -> Result<PolicySpec> {
    let mut spec = match &args.file {
        Some(file) => policy_from_file(file, args.name.as_deref(), args.strict)?,
        None => PolicySpec::default(),
    };
    let select = [
        &args.select_semver,
        &args.select_numeric,
        &args.select_alpha,
    ];
    if select.iter().any(|s| s.is_some()) {
        spec.semver_range = args.select_semver.clone();
        spec.numerical_order = args.select_numeric.clone();
        spec.alphabetical_order = args.select_alpha.clone();
    } else if args.file.is_none() {
        bail!(
            "no policy: give -f IMAGEPOLICY.yaml or one of --select-semver, --select-numeric, --select-alpha"
        );
    }
    if let Some(re) = &args.filter_regex {
        spec.filter_pattern = Some(re.clone());
    }
    if let Some(tpl) = &args.filter_extract {
        spec.filter_extract = Some(tpl.clone());
    }
    Ok(spec)
}

fn policy_from_file(file: &PathBuf, name: Option<&str>, strict: bool) -> Result<PolicySpec> {
    let m = super::unknown_fields(
        Manifests::load_paths(std::slice::from_ref(file), &LoadOptions::default()),
        strict,
    );
    if strict
        && m.errors
            .iter()
            .any(|e| matches!(e, tagwarden_api::LoadError::Strict(_)))
    {
        let list: Vec<String> = m.errors.iter().map(|e| format!("\n  {e}")).collect();
        bail!(
            "{}: unknown fields (--strict):{}",
            file.display(),
            list.concat()
        );
    }
    let policy = super::one_object(&m, file, name, Kind::ImagePolicy, |o| match o {
        Object::ImagePolicy(p) => Some(p),
        _ => None,
    })?;
    Ok(policy.policy_spec())
}
