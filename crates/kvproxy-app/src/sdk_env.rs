//! The environment that points an app's Azure SDK at this server with no code change: the App Service
//! managed-identity variables, which `ManagedIdentityCredential` (and so `DefaultAzureCredential`) reads.
//! `kvproxy env` prints it; the desktop app copies it.

use strum::{EnumString, IntoStaticStr, VariantNames};

/// The shell whose syntax the lines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, EnumString, IntoStaticStr, VariantNames)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum EnvShell {
    #[default]
    Sh,
    Fish,
    Powershell,
    Cmd,
}

/// `http://localhost:PORT/msi/PROFILE/token`: the endpoint for one profile.
pub fn identity_endpoint(port: u16, profile: &str) -> String {
    format!("http://localhost:{port}/msi/{profile}/token")
}

/// The two lines that set `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (the API key), each ending in a newline.
pub fn identity_env(shell: EnvShell, endpoint: &str, api_key: &str) -> String {
    let line = |name: &str, value: &str| match shell {
        EnvShell::Sh => format!("export {name}='{value}'\n"),
        EnvShell::Fish => format!("set -gx {name} '{value}';\n"),
        EnvShell::Powershell => format!("$env:{name} = '{value}'\n"),
        EnvShell::Cmd => format!("set {name}={value}\n"),
    };
    line("IDENTITY_ENDPOINT", endpoint) + &line("IDENTITY_HEADER", api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shell_sets_both_variables_in_its_own_syntax() {
        let endpoint = identity_endpoint(5616, "api");
        assert_eq!(endpoint, "http://localhost:5616/msi/api/token");
        for (shell, first) in [
            ("sh", "export IDENTITY_ENDPOINT='http://localhost:5616/msi/api/token'"),
            (
                "fish",
                "set -gx IDENTITY_ENDPOINT 'http://localhost:5616/msi/api/token';",
            ),
            (
                "powershell",
                "$env:IDENTITY_ENDPOINT = 'http://localhost:5616/msi/api/token'",
            ),
            ("cmd", "set IDENTITY_ENDPOINT=http://localhost:5616/msi/api/token"),
        ] {
            let shell: EnvShell = shell.parse().unwrap();
            let text = identity_env(shell, &endpoint, "KEY");
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2, "{text}");
            assert_eq!(lines[0], first);
            assert!(
                lines[1].contains("IDENTITY_HEADER") && lines[1].contains("KEY"),
                "{text}"
            );
        }
        assert_eq!(EnvShell::VARIANTS, ["sh", "fish", "powershell", "cmd"]);
    }
}
