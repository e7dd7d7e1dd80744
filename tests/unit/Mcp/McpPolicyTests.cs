using System.Text;
using EtPhoneHome.Mcp;
using EtPhoneHome.Server.Mcp;
using EtPhoneHome.Tests.Unit.Registry;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

public sealed class OutputBudgetTests
{
    [Fact]
    public void TextWithinBudget_IsUnchanged()
    {
        var result = OutputBudget.Apply("hello", 16);

        Assert.Equal(new BudgetedText("hello", false, 5, false), result);
    }

    [Fact]
    public void MultiByteText_IsCutAtACharacterBoundary_WithTheFullSize()
    {
        var text = string.Concat(Enumerable.Repeat("é", 100)); // 200 UTF-8 bytes

        var result = OutputBudget.Apply(text, 51);

        Assert.True(result.Truncated);
        Assert.Equal(200, result.TotalBytes);
        Assert.StartsWith(string.Concat(Enumerable.Repeat("é", 25)) + "\n[truncated: showed the first 50 of 200 bytes]", result.Text);
    }

    [Fact]
    public void BinaryContent_IsNeverDumped()
    {
        var result = OutputBudget.Apply("ELF\0\u0001\u0002garbage", 1024);

        Assert.True(result.Binary);
        Assert.Equal("[binary output: 13 bytes not shown]", result.Text);
    }

    [Fact]
    public void AnsiColouredText_IsNotBinary() => Assert.False(OutputBudget.LooksBinary("\u001b[32mok\u001b[0m\n\tdone\r\n"));
}

public sealed class LocalPathPolicyTests : IDisposable
{
    private readonly TempData _data = new();

    public void Dispose() => _data.Dispose();

    [Fact]
    public void PathInsideAllowedDirectory_IsAccepted_AndCanonical()
    {
        var root = Directory.CreateDirectory(Path.Combine(_data.Root, "exchange")).FullName;
        var policy = new LocalPathPolicy([root]);

        Assert.Equal(Path.Combine(root, "a", "b.txt"), policy.Resolve("local_path", Path.Combine(root, "a", ".", "b.txt")));
    }

    [Fact]
    public void DotDotOut_IsPathDenied()
    {
        var root = Directory.CreateDirectory(Path.Combine(_data.Root, "exchange")).FullName;
        var policy = new LocalPathPolicy([root]);

        var failure = Assert.Throws<ToolFailure>(() => policy.Resolve("local_path", root + "/../registry.db"));
        Assert.Equal(ToolErrorCodes.PathDenied, failure.Code);
    }

    [Fact]
    public void SymlinkOut_IsPathDenied()
    {
        var root = Directory.CreateDirectory(Path.Combine(_data.Root, "exchange")).FullName;
        var outside = Directory.CreateDirectory(Path.Combine(_data.Root, "secrets")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(root, "link"), outside);
        var policy = new LocalPathPolicy([root]);

        var failure = Assert.Throws<ToolFailure>(() => policy.Resolve("local_path", Path.Combine(root, "link", "id_ed25519")));
        Assert.Equal(ToolErrorCodes.PathDenied, failure.Code);
    }

    [Fact]
    public void SiblingWithSamePrefix_IsPathDenied()
    {
        var root = Directory.CreateDirectory(Path.Combine(_data.Root, "exchange")).FullName;
        var policy = new LocalPathPolicy([root]);

        Assert.Throws<ToolFailure>(() => policy.Resolve("local_path", root + "-other/file"));
    }

    [Fact]
    public void RelativePath_IsInvalidArgument()
    {
        var policy = new LocalPathPolicy([_data.Root]);

        Assert.Equal(ToolErrorCodes.InvalidArgument, Assert.Throws<ToolFailure>(() => policy.Resolve("local_path", "x/y")).Code);
    }

    [Fact]
    public void Default_IsTheDataDirectorysExchangeFolder()
    {
        var policy = LocalPathPolicy.For(new McpServerSettings(), _data.Dir);

        Assert.Equal([Path.Combine(_data.Dir.Path, "exchange")], policy.Roots);
    }
}

public sealed class CommandJobStoreTests
{
    [Fact]
    public async Task FinishedResults_ExpireAfterRetention()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        await using var store = new CommandJobStore(TimeSpan.FromHours(1), 10, time);
        var job = store.Start("u", "n", "true", _ => Task.FromResult<object>("ok"));
        await job.Completion;

        time.Advance(TimeSpan.FromMinutes(59));
        Assert.Same(job, store.Get(job.Id));
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Null(store.Get(job.Id));
    }

    [Fact]
    public async Task AtCapacity_OldestFinishedIsDropped_AllRunningIsBusy()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        await using var store = new CommandJobStore(TimeSpan.FromHours(1), 2, time);
        var done = store.Start("u", "n", "a", _ => Task.FromResult<object>("ok"));
        await done.Completion;
        var gate = new TaskCompletionSource<object>();
        store.Start("u", "n", "b", _ => gate.Task);
        store.Start("u", "n", "c", _ => gate.Task);

        Assert.Null(store.Get(done.Id));
        Assert.Equal(ToolErrorCodes.Busy, Assert.Throws<ToolFailure>(() => store.Start("u", "n", "d", _ => gate.Task)).Code);
        gate.SetResult("ok");
    }
}
