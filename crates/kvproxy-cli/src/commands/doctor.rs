//! `kvproxy doctor [PROFILE]`: the engine's step-by-step check of a profile, printed one line a step.

use crate::args::DoctorArgs;
use crate::exit::ChecksFailed;
use kvproxy_core::{CheckStatus, DoctorOptions, DoctorReport, ErrorClass, diagnose};

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let store = super::store()?;
    let profile = store.get_or_default(args.profile.as_deref())?.resolve()?;
    if !args.json {
        println!("Checking profile '{}'...", profile.name);
    }
    let report = diagnose(&profile, &DoctorOptions::default()).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human(&report));
    }
    match report.first_failure() {
        None => Ok(()),
        Some(first) => {
            let failed = report.count(CheckStatus::Fail);
            let steps = if failed == 1 { "step" } else { "steps" };
            Err(ChecksFailed {
                class: first.class.unwrap_or(ErrorClass::Auth),
                message: format!(
                    "{failed} {steps} of the check of profile '{}' failed; fix '{}' first",
                    report.profile,
                    first.title.to_lowercase()
                ),
            }
            .into())
        }
    }
}

fn marker(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Pass => "PASS",
        CheckStatus::Warn => "WARN",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Skip => "SKIP",
    }
}

/// One line a step (`PASS  3. Vault host: …`), an indented `fix:` line under any step that needs one, and
/// a summary.
fn human(report: &DoctorReport) -> String {
    let mut out = String::new();
    for (number, check) in report.steps.iter().enumerate() {
        out.push_str(&format!(
            "{}  {}. {}: {}\n",
            marker(check.status),
            number + 1,
            check.title,
            check.detail
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("          fix: {fix}\n"));
        }
    }
    let warned = report.count(CheckStatus::Warn);
    let summary = match (report.passed(), warned) {
        (true, 0) => "All checks passed.".to_string(),
        (true, n) => format!("No check failed; {n} warning(s) to look at."),
        (false, _) => format!(
            "{} check(s) failed, {warned} warning(s).",
            report.count(CheckStatus::Fail)
        ),
    };
    out.push_str(&summary);
    out.push('\n');
    if report.demo {
        out.push_str("note: a DEMO profile (the local emulator), not Azure\n");
    }
    out
}
