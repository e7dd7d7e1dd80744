using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class KeyAdministrationTests
{
    [Fact]
    public void Revoke_SignalsEveryClosedSessionsGate()
    {
        var registry = new FakeFleet
        {
            NextRevoke = new RevokeOutcome
            {
                Fingerprint = "SHA256:k",
                ClosedSessions = [FakeFleet.Session("u", 1, gatePid: 4242), FakeFleet.Session("u", 2, gatePid: 4343), FakeFleet.Session("u", 3)],
            },
        };
        var signalled = new List<int>();

        var report = KeyAdministration.Revoke(registry, " SHA256:k ", "alice", pid => { signalled.Add(pid); return pid != 4343; });

        Assert.Equal([4242, 4343], signalled);
        Assert.Equal([4242], report.SignalledGatePids); // 4343 was already gone
        Assert.Equal(("revoke", "SHA256:k", "alice"), Assert.Single(registry.Calls));
    }

    [Fact]
    public void Revoke_NeverSignalsInitOrItself()
    {
        var registry = new FakeFleet
        {
            NextRevoke = new RevokeOutcome
            {
                Fingerprint = "SHA256:k",
                ClosedSessions = [FakeFleet.Session("u", 1, gatePid: 1), FakeFleet.Session("u", 2, gatePid: Environment.ProcessId), FakeFleet.Session("u", 3, gatePid: 0)],
            },
        };
        var signalled = new List<int>();

        KeyAdministration.Revoke(registry, "SHA256:k", "alice", pid => { signalled.Add(pid); return true; });

        Assert.Empty(signalled);
    }

    [Fact]
    public void TerminateProcess_OfAGoneProcess_ReturnsFalse()
    {
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
        child.WaitForExit();
        var pid = child.Id;
        child.Dispose();

        Assert.False(KeyAdministration.TerminateProcess(pid));
    }

    [Fact]
    public async Task TerminateProcess_StopsALiveProcess()
    {
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;

        Assert.True(KeyAdministration.TerminateProcess(child.Id));
        await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(child.HasExited);
    }

    [Fact]
    public void Approve_UnknownId_Throws()
    {
        var registry = new FakeFleet();
        Assert.Throws<RegistryNotFoundException>(() => KeyAdministration.Approve(registry, "SHA256:nope", "alice"));
    }
}
