using System.Diagnostics;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

/// <summary>A private temp folder for the profile files, and keys made by ssh-keygen.</summary>
internal sealed class RemoteTemp : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("eph-remote-").FullName;

    public void Dispose() => Directory.Delete(Dir, recursive: true);

    /// <summary>Generates a key with ssh-keygen; returns the private key's path (the public key is path + ".pub").</summary>
    public string NewKey(string name, string type = "ed25519")
    {
        var path = Path.Combine(Dir, name);
        Run("ssh-keygen", "-t", type, "-N", "", "-C", name, "-f", path, "-q");
        return path;
    }

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed: {p.StandardError.ReadToEnd()}");
        return output;
    }
}
