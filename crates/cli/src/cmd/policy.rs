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
    /// The tag a marker holds now: with --no-downgrade (or the file's
    /// tagwarden.io/no-downgrade), a selection ranking lower keeps it.
    #[arg(long, value_name = "TAG")]
    current: Option<String>,
    /// Hold back downgrades of --current (tagwarden.io/no-downgrade).
    #[arg(long, requires = "current")]
    no_downgrade: bool,
    /// Tags are eligible only this long after first seen (or the file's
    /// tagwarden.io/minimum-age), e.g. 24h; needs --first-seen.
    #[arg(long, value_name = "DURATION", requires = "first_seen")]
    minimum_age: Option<String>,
    /// When tags were first seen: lines 'TAG RFC3339'; tags not listed
    /// count as old, as the first scan's do.
    #[arg(long, value_name = "FILE")]
    first_seen: Option<PathBuf>,
    /// The time to judge ages at (RFC 3339); now by default.
    #[arg(long, value_name = "TIME", requires = "first_seen")]
    now: Option<String>,
}

pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Test(args) => test(args),
    }
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let (spec, annotations) = policy_spec(&args)?;
    let policy = Policy::new(&spec)?;
    let text = read_tags(&args.tags)?;
    let mut tags: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect();

    // tagwarden.io/minimum-age: tags too young leave the list, said on stderr.
    let min_age =
        match args.minimum_age.as_deref().or(annotations
            .get("tagwarden.io/minimum-age")
            .map(String::as_str))
        {
            Some(d) => Some(tagwarden_api::duration::parse(d.trim()).with_context(|| {
                format!("minimum age '{d}': expected a duration like 24h or 90m")
            })?),
            None => None,
        };
    if let (Some(min), Some(file)) = (min_age, &args.first_seen) {
        let now = match &args.now {
            Some(t) => tagwarden_api::time::Time::parse(t)
                .with_context(|| {
                    format!("--now '{t}': expected RFC 3339, e.g. 2026-12-01T10:00:00Z")
                })?
                .system(),
            None => std::time::SystemTime::now(),
        };
        let listed =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut seen = std::collections::HashMap::new();
        for (i, line) in listed
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let (tag, when) = line
                .trim()
                .split_once(char::is_whitespace)
                .with_context(|| format!("{}:{}: expected 'TAG RFC3339'", file.display(), i + 1))?;
            let t = tagwarden_api::time::Time::parse(when.trim()).with_context(|| {
                format!(
                    "{}:{}: '{}' is not RFC 3339",
                    file.display(),
                    i + 1,
                    when.trim()
                )
            })?;
            seen.insert(tag.to_string(), t.system());
        }
        let mut err = std::io::stderr().lock();
        tags.retain(|t| match seen.get(*t) {
            Some(at) if *at + min > now => {
                let _ = writeln!(
                    err,
                    "{t}\ttoo young for tagwarden.io/minimum-age {}: eligible at {}",
                    tagwarden_api::duration::format(min),
                    tagwarden_api::time::Time::from_system(*at + min)
                );
                false
            }
            _ => true,
        });
    }

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
    let no_downgrade = args.no_downgrade
        || annotations
            .get("tagwarden.io/no-downgrade")
            .is_some_and(|v| v.trim() == "true");
    if let Some(current) = &args.current
        && no_downgrade
        && policy.admits(current)
        && policy.compare(selected.tag, current) == Some(std::cmp::Ordering::Less)
    {
        writeln!(
            std::io::stderr().lock(),
            "{}\theld back by tagwarden.io/no-downgrade: ranks lower than the current '{current}'; narrow the range to revert on purpose",
            selected.tag
        )?;
        writeln!(out, "{current}")?;
        return Ok(ExitCode::SUCCESS);
    }
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

/// The file's policy (if any) with the flags laid over it, and the
/// policy's annotations (the guards).
fn policy_spec(
    args: &TestArgs,
) -> Result<(PolicySpec, std::collections::BTreeMap<String, String>)> {
    let (mut spec, annotations) = match &args.file {
        Some(file) => policy_from_file(file, args.name.as_deref(), args.strict)?,
        None => (PolicySpec::default(), Default::default()),
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
    Ok((spec, annotations))
}

fn policy_from_file(
    file: &PathBuf,
    name: Option<&str>,
    strict: bool,
) -> Result<(PolicySpec, std::collections::BTreeMap<String, String>)> {
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
    Ok((policy.policy_spec(), policy.meta.annotations.clone()))
}
