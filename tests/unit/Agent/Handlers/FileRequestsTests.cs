using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Agent;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FileRequestsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-files-").FullName;
    private readonly PathPolicy _open = new(null, null);

    public void Dispose()
    {
        // rm works below PATH_MAX depth (openat); Directory.Delete does not.
        using var rm = System.Diagnostics.Process.Start("rm", ["-rf", _dir]);
        rm.WaitForExit();
    }

    private string P(string relative) => Path.Combine(_dir, relative);

    private static JsonElement Params<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => Wire.ToElement(value, type);

    private ReadFileResult Read(string path, long? max = null, bool? truncate = null, PathPolicy? policy = null) =>
        Wire.FromElement(FileRequests.ReadFile(Params(new ReadFileParams { Path = path, MaxBytes = max, Truncate = truncate }, FileJson.Default.ReadFileParams), policy ?? _open),
            FileJson.Default.ReadFileResult);

    [Fact]
    public void ReadFile_Utf8Text_ComesAsTextWithHash()
    {
        File.WriteAllText(P("a.txt"), "grüße\n");
        var result = Read(P("a.txt"));
        Assert.Equal(FileEncodings.Utf8, result.Encoding);
        Assert.Equal("grüße\n", result.Content);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(P("a.txt")))).ToLowerInvariant(), result.Sha256);
        Assert.False(result.Truncated);
    }

    [Theory]
    [InlineData(new byte[] { 0x61, 0x00, 0x62 })]             // NUL byte
    [InlineData(new byte[] { 0xff, 0xfe, 0x41 })]             // invalid UTF-8
    [InlineData(new byte[] { 0x61, 0xc3 })]                   // truncated sequence at the very end of a whole file
    public void ReadFile_Binary_ComesAsBase64_ByteExact(byte[] bytes)
    {
        File.WriteAllBytes(P("b.bin"), bytes);
        var result = Read(P("b.bin"));
        Assert.Equal(FileEncodings.Base64, result.Encoding);
        Assert.Equal(bytes, Convert.FromBase64String(result.Content));
    }

    [Fact]
    public void ReadFile_OverCap_IsTooLarge_UnlessTruncationAsked()
    {
        File.WriteAllText(P("big.txt"), new string('x', 100));
        var fault = Assert.Throws<RpcFault>(() => Read(P("big.txt"), max: 10));
        Assert.Equal(RpcErrorCodes.TooLarge, fault.Code);

        var cut = Read(P("big.txt"), max: 10, truncate: true);
        Assert.True(cut.Truncated);
        Assert.Equal(100, cut.Size);
        Assert.Equal(new string('x', 10), cut.Content);
    }

    [Fact]
    public void ReadFile_TruncatedInsideAMultibyteCharacter_StaysText()
    {
        File.WriteAllText(P("u.txt"), "aaé"); // 61 61 c3 a9
        var cut = Read(P("u.txt"), max: 3, truncate: true);
        Assert.Equal(FileEncodings.Utf8, cut.Encoding);
        Assert.Equal("aa", cut.Content);
    }

    [Fact]
    public void ReadFile_Missing_IsNotFound_AndOutside_IsDenied()
    {
        Assert.Equal(RpcErrorCodes.NotFound, Assert.Throws<RpcFault>(() => Read(P("none"))).Code);
        var policy = new PathPolicy([P("inside")], null);
        Directory.CreateDirectory(P("inside"));
        File.WriteAllText(P("outside.txt"), "secret");
        Assert.Equal(RpcErrorCodes.PathDenied, Assert.Throws<RpcFault>(() => Read(P("outside.txt"), policy: policy)).Code);
        File.CreateSymbolicLink(P("inside/link"), P("outside.txt"));
        Assert.Equal(RpcErrorCodes.PathDenied, Assert.Throws<RpcFault>(() => Read(P("inside/link"), policy: policy)).Code);
    }

    private WriteFileResult Write(string path, string content, string? encoding = null, bool? createParents = null, string? mode = null, PathPolicy? policy = null) =>
        Wire.FromElement(FileRequests.WriteFile(Params(new WriteFileParams { Path = path, Content = content, Encoding = encoding, CreateParents = createParents, Mode = mode }, FileJson.Default.WriteFileParams), policy ?? _open),
            FileJson.Default.WriteFileResult);

    [Fact]
    public void WriteFile_CreatesParents_WritesAtomically_LeavesNoTempFile()
    {
        var result = Write(P("x/y/z.txt"), "hello", mode: "640");
        Assert.True(result.Created);
        Assert.Equal("hello", File.ReadAllText(P("x/y/z.txt")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(P("x/y/z.txt")));
        Assert.Single(Directory.GetFiles(P("x/y"))); // no .eph-tmp-* left behind

        var again = Write(P("x/y/z.txt"), "AQID", encoding: FileEncodings.Base64);
        Assert.False(again.Created);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(P("x/y/z.txt")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(P("x/y/z.txt"))); // mode kept
    }

    [Fact]
    public void WriteFile_ReplacesByRename_SoAnOpenReaderKeepsTheOldContent()
    {
        File.WriteAllText(P("r.txt"), "old");
        using var reader = new FileStream(P("r.txt"), FileMode.Open, FileAccess.Read);
        Write(P("r.txt"), "new");
        Assert.Equal("old", new StreamReader(reader).ReadToEnd()); // the old inode: nobody ever saw a half-written file
        Assert.Equal("new", File.ReadAllText(P("r.txt")));
    }

    [Fact]
    public void WriteFile_ThroughASymlinkLeaf_IsRefused_AndTouchesNothing()
    {
        File.WriteAllText(P("target.txt"), "keep");
        File.CreateSymbolicLink(P("link.txt"), P("target.txt"));
        var fault = Assert.Throws<RpcFault>(() => Write(P("link.txt"), "overwrite"));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
        Assert.Equal("keep", File.ReadAllText(P("target.txt")));
        Assert.NotNull(new FileInfo(P("link.txt")).LinkTarget);
    }

    [Fact]
    public void WriteFile_WithoutCreateParents_MissingParent_IsNotFound()
    {
        Assert.Equal(RpcErrorCodes.NotFound, Assert.Throws<RpcFault>(() => Write(P("missing/a.txt"), "x", createParents: false)).Code);
        Assert.False(Directory.Exists(P("missing")));
    }

    [Theory]
    [InlineData("abc", "base64", "base64")]
    [InlineData("x", "latin1", "encoding")]
    public void WriteFile_BadInput_NamesTheField(string content, string encoding, string expected)
    {
        var fault = Assert.Throws<RpcFault>(() => Write(P("bad.txt"), content, encoding: encoding));
        Assert.Equal(RpcErrorCodes.InvalidParams, fault.Code);
        Assert.Contains(expected, fault.Message);
        Assert.False(File.Exists(P("bad.txt")));
    }

    [Fact]
    public void WriteFile_BadMode_IsInvalidParams()
    {
        Assert.Contains("mode", Assert.Throws<RpcFault>(() => Write(P("m.txt"), "x", mode: "999")).Message);
    }

    private ListFilesResult List(string path, bool recursive = false, int? max = null) =>
        Wire.FromElement(FileRequests.ListFiles(Params(new ListFilesParams { Path = path, Recursive = recursive, MaxEntries = max }, FileJson.Default.ListFilesParams), _open),
            FileJson.Default.ListFilesResult);

    [Fact]
    public void ListFiles_SortedWithTypesModesAndLinkTargets()
    {
        File.WriteAllText(P("b.txt"), "12345");
        Directory.CreateDirectory(P("a-dir"));
        File.WriteAllText(P("a-dir/inner.txt"), "");
        File.CreateSymbolicLink(P("C-link"), "/nonexistent/target");
        File.SetUnixFileMode(P("b.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var flat = List(_dir);
        Assert.Equal(["C-link", "a-dir", "b.txt"], flat.Entries.Select(e => e.Name)); // ordinal: upper case first
        var file = flat.Entries.Single(e => e.Name == "b.txt");
        Assert.Equal((FileEntryTypes.File, 5L, "600"), (file.Type, file.Size, file.Mode));
        Assert.Equal(FileEntryTypes.Directory, flat.Entries.Single(e => e.Name == "a-dir").Type);
        var link = flat.Entries.Single(e => e.Name == "C-link");
        Assert.Equal((FileEntryTypes.Symlink, "/nonexistent/target"), (link.Type, link.Target));

        var deep = List(_dir, recursive: true);
        Assert.Contains(deep.Entries, e => e.Name == "a-dir/inner.txt");
        Assert.Equal(deep.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), deep.Entries.Select(e => e.Name));
    }

    [Fact]
    public void ListFiles_MaxEntries_Truncates()
    {
        for (var i = 0; i < 5; i++)
        {
            File.WriteAllText(P($"f{i}"), "");
        }

        var result = List(_dir, max: 3);
        Assert.True(result.Truncated);
        Assert.Equal(["f0", "f1", "f2"], result.Entries.Select(e => e.Name));
    }

    [Fact]
    public void ListFiles_UnreadableDirectory_IsReportedOnItsEntry_NotFatal()
    {
        // Root reads everything regardless of permission bits, so the unreadable directory is made by depth: its
        // full path is longer than PATH_MAX (4096), which opendir refuses for any user.
        var segment = new string('d', 250);
        var script = $"cd '{_dir}' && mkdir deep && cd deep && for i in $(seq 1 20); do mkdir {segment} || exit 1; cd {segment} 2>/dev/null || exit 0; done";
        using (var sh = System.Diagnostics.Process.Start("/bin/sh", ["-c", script]))
        {
            sh.WaitForExit();
            Assert.Equal(0, sh.ExitCode);
        }

        File.WriteAllText(P("top.txt"), "");
        var result = List(_dir, recursive: true);
        Assert.Contains(result.Entries, e => e.Name == "top.txt" && e.Error is null);
        Assert.Contains(result.Entries, e => e.Error is not null);
        Assert.Equal(result.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), result.Entries.Select(e => e.Name));
        Assert.True(FileRequests.IsText(Encoding.UTF8.GetBytes("ok")));
    }
}
