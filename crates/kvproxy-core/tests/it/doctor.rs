//! `diagnose` against the emulator: each way a profile can be broken shows at its own step, with a fix, and
//! the steps after a failure it depends on are skipped.

use crate::common::{CERT, Fixture, VAULT, Valid};
use kvproxy_core::{CheckId, CheckStatus, DoctorOptions, DoctorReport, ErrorClass, SigningAlgorithm, diagnose};
use kvproxy_emulator::{CertificateOptions, VaultPermissions};
use time::{Duration, OffsetDateTime};

async fn doctor(fx: &Fixture) -> DoctorReport {
    diagnose(&fx.profile(SigningAlgorithm::PS256).valid(), &DoctorOptions::default()).await
}

/// The statuses of all eight steps, in order: one assertion shows the whole picture when it fails.
fn statuses(report: &DoctorReport) -> Vec<(CheckId, CheckStatus)> {
    report.steps.iter().map(|c| (c.step, c.status)).collect()
}

fn expect(report: &DoctorReport, want: [CheckStatus; 8]) {
    let want: Vec<_> = CheckId::ALL.into_iter().zip(want).collect();
    assert_eq!(statuses(report), want, "{report:#?}");
}

fn detail(report: &DoctorReport, step: CheckId) -> String {
    report.check(step).map(|c| c.detail.clone()).unwrap_or_default()
}

fn fix(report: &DoctorReport, step: CheckId) -> String {
    report.check(step).and_then(|c| c.fix.clone()).unwrap_or_default()
}

/// A new latest version of the fixture's certificate, registered on the app (so only what `options`
/// changes is wrong with it).
fn new_version(fx: &Fixture, options: CertificateOptions) {
    let cert = fx.emulator.create_certificate_with(VAULT, CERT, "test-app", &options);
    fx.emulator.register_certificate(&fx.client_id, &cert);
}

use CheckStatus::{Fail, Pass, Skip, Warn};

#[tokio::test]
async fn a_working_profile_passes_every_step() {
    let fx = Fixture::start().await;
    let report = doctor(&fx).await;
    expect(&report, [Pass; 8]);
    assert!(report.passed());
    assert!(report.steps.iter().all(|c| c.fix.is_none()), "{report:#?}");
    assert_eq!(report.certificate_expires(), Some(fx.cert.expires));
    assert!(matches!(report.days_left, Some(363..=365)), "{:?}", report.days_left);
    assert!(report.demo);
    assert!(detail(&report, CheckId::Sign).contains("verifies"), "{report:#?}");
    assert!(detail(&report, CheckId::AppRegistration).contains(&hex_thumbprint(&fx.cert.cer_der)));
    assert!(detail(&report, CheckId::Token).contains("Demo.Read"), "{report:#?}");

    let json = serde_json::to_value(&report).expect("the report serialises");
    assert_eq!(json["steps"][6]["step"], "app-registration");
    assert_eq!(json["steps"][0]["status"], "pass");
    assert_eq!(json["passed"], true);
    assert!(json["expires"].as_str().is_some_and(|e| e.ends_with('Z')), "{json}");
    let text = json.to_string();
    assert!(!text.contains("eyJ"), "no token or assertion in the report: {text}");
}

#[tokio::test]
async fn an_expired_certificate_fails_and_no_token_is_requested() {
    let fx = Fixture::start().await;
    let now = OffsetDateTime::now_utc();
    new_version(
        &fx,
        CertificateOptions {
            not_before: Some(now - Duration::days(400)),
            expires: Some(now - Duration::days(3)),
            ..Default::default()
        },
    );
    fx.emulator.reset_counters();
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Fail, Pass, Pass, Pass, Skip]);
    assert!(!report.passed());
    assert!(detail(&report, CheckId::Certificate).contains("expired"), "{report:#?}");
    assert!(
        fix(&report, CheckId::Certificate).contains("new version"),
        "{report:#?}"
    );
    assert!(matches!(report.days_left, Some(-4..=-3)), "{:?}", report.days_left);
    assert_eq!(report.first_failure().map(|c| c.step), Some(CheckId::Certificate));
    assert_eq!(fx.emulator.count(kvproxy_emulator::Route::Token), 0);
}

#[tokio::test]
async fn a_certificate_expiring_within_thirty_days_warns_with_the_days_left() {
    let fx = Fixture::start().await;
    new_version(
        &fx,
        CertificateOptions {
            expires: Some(OffsetDateTime::now_utc() + Duration::days(12) + Duration::hours(1)),
            ..Default::default()
        },
    );
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Warn, Pass, Pass, Pass, Pass]);
    assert!(report.passed(), "warnings do not fail");
    assert_eq!(report.days_left, Some(12));
    assert!(
        detail(&report, CheckId::Certificate).contains("12 days left"),
        "{report:#?}"
    );
    assert!(fix(&report, CheckId::Certificate).contains("renew"), "{report:#?}");
}

#[tokio::test]
async fn an_exportable_key_warns_loudly() {
    let fx = Fixture::start().await;
    new_version(
        &fx,
        CertificateOptions {
            exportable: true,
            ..Default::default()
        },
    );
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Warn, Pass, Pass, Pass]);
    assert!(report.passed());
    assert!(detail(&report, CheckId::NonExportable).contains("CAN BE EXPORTED"));
    assert!(fix(&report, CheckId::NonExportable).contains("exportable=false"));
}

#[tokio::test]
async fn an_unregistered_certificate_fails_at_the_app_registration_before_any_token_request() {
    let fx = Fixture::start().await;
    fx.emulator.unregister_certificate(&fx.client_id, &fx.cert);
    fx.emulator.reset_counters();
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Pass, Fail, Skip]);
    let check = report.check(CheckId::AppRegistration).expect("step 7");
    assert!(check.detail.contains("AADSTS700027"), "{check:#?}");
    assert!(check.detail.contains(&hex_thumbprint(&fx.cert.cer_der)), "{check:#?}");
    assert!(
        check.fix.as_deref().is_some_and(|f| f.contains("--append")),
        "{check:#?}"
    );
    assert_eq!(check.class, Some(ErrorClass::Auth));
    assert_eq!(fx.emulator.count(kvproxy_emulator::Route::Token), 0);
}

#[tokio::test]
async fn no_permission_to_sign_fails_at_the_signing_step_naming_the_role() {
    let fx = Fixture::start().await;
    fx.emulator.set_permissions(
        VAULT,
        VaultPermissions {
            get_certificate: true,
            sign: false,
        },
    );
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Fail, Pass, Skip]);
    let fix = fix(&report, CheckId::Sign);
    assert!(fix.contains("Key Vault Crypto User") && fix.contains("sign"), "{fix}");
    assert!(detail(&report, CheckId::Sign).contains("403"), "{report:#?}");
}

#[tokio::test]
async fn a_key_whose_key_ops_lack_sign_fails_at_the_signing_step() {
    let fx = Fixture::start().await;
    new_version(
        &fx,
        CertificateOptions {
            sign_allowed: false,
            ..Default::default()
        },
    );
    fx.emulator.reset_counters();
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Fail, Pass, Skip]);
    assert!(detail(&report, CheckId::Sign).contains("key_ops"), "{report:#?}");
    assert_eq!(fx.emulator.count(kvproxy_emulator::Route::Sign), 0);
}

#[tokio::test]
async fn a_disabled_certificate_fails_and_is_not_signed_with() {
    let fx = Fixture::start().await;
    fx.emulator.set_certificate_enabled(VAULT, CERT, false);
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Fail, Pass, Skip, Pass, Skip]);
    assert!(detail(&report, CheckId::Certificate).contains("disabled"));
    assert!(fix(&report, CheckId::Certificate).contains("--enabled true"));
}

#[tokio::test]
async fn an_unknown_tenant_fails_first_and_skips_the_rest() {
    let fx = Fixture::start().await;
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    profile.tenant = "0badc0de-0000-4000-8000-000000000000".into();
    fx.emulator.reset_counters();
    let report = diagnose(&profile.valid(), &DoctorOptions::default()).await;
    expect(&report, [Fail, Skip, Skip, Skip, Skip, Skip, Skip, Skip]);
    let check = report.check(CheckId::Authority).expect("step 1");
    assert!(check.detail.contains("AADSTS90002"), "{check:#?}");
    assert!(
        check
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("check the tenant id/domain in the profile")),
        "{check:#?}"
    );
    assert_eq!(check.class, Some(ErrorClass::Input));
    assert!(report.steps[1..].iter().all(|c| c.detail.starts_with("skipped:")));
    assert_eq!(report.certificate_expires(), None);
    assert_eq!(fx.emulator.count(kvproxy_emulator::Route::DeveloperToken), 0);
}

#[tokio::test]
async fn graph_refusing_to_read_the_app_only_warns() {
    let fx = Fixture::start().await;
    fx.emulator.set_graph_access(false);
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Pass, Warn, Pass]);
    assert!(report.passed());
    assert!(
        detail(&report, CheckId::AppRegistration).contains("cannot check"),
        "{report:#?}"
    );
    assert!(fix(&report, CheckId::AppRegistration).contains(&hex_thumbprint(&fx.cert.cer_der)));
}

#[tokio::test]
async fn an_app_graph_does_not_know_warns_and_the_token_request_says_why() {
    let fx = Fixture::start().await;
    let mut profile = fx.profile(SigningAlgorithm::PS256);
    profile.client_id = "99999999-8888-4777-8666-555555555555".into();
    let report = diagnose(&profile.valid(), &DoctorOptions::default()).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Pass, Warn, Fail]);
    assert!(detail(&report, CheckId::AppRegistration).contains("404"), "{report:#?}");
    assert!(detail(&report, CheckId::Token).contains("AADSTS700016"), "{report:#?}");
}

#[tokio::test]
async fn a_token_without_roles_warns_to_grant_application_permissions() {
    let fx = Fixture::start().await;
    fx.emulator.set_app_roles(&fx.client_id, &[]);
    let report = doctor(&fx).await;
    expect(&report, [Pass, Pass, Pass, Pass, Pass, Pass, Pass, Warn]);
    assert!(fix(&report, CheckId::Token).contains("grant and admin-consent application permissions"));
}

#[tokio::test]
async fn an_unreachable_tenant_fails_as_a_network_problem() {
    let fx = Fixture::start().await;
    let profile = fx.profile(SigningAlgorithm::PS256).valid();
    fx.emulator.shutdown().await;
    let report = diagnose(&profile, &DoctorOptions::default()).await;
    expect(&report, [Fail, Skip, Skip, Skip, Skip, Skip, Skip, Skip]);
    assert_eq!(report.steps[0].class, Some(ErrorClass::Network));
    assert!(fix(&report, CheckId::Authority).contains("kvproxy demo"), "{report:#?}");
}

fn hex_thumbprint(der: &[u8]) -> String {
    kvproxy_core::Thumbprints::of_der(der).sha1_hex()
}
