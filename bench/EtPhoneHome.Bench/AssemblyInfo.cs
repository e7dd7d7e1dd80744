// The sandbox drives OpenSSH's sshd and Unix file modes: it is a Linux (and macOS) tool.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
