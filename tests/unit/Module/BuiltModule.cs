namespace EtPhoneHome.Tests.Unit.Module;

/// <summary>
/// The module layout the build produced (out/EtPhoneHome). `./build.sh test` builds it before the tests run;
/// when testing alone, build it first with `dotnet msbuild build/build.proj -t:ModuleLayout`.
/// </summary>
internal static class BuiltModule
{
    public static readonly string RepoRoot = FindRoot();

    public static string Directory
    {
        get
        {
            var dir = Path.Combine(RepoRoot, "out", "EtPhoneHome");
            if (!File.Exists(Path.Combine(dir, "EtPhoneHome.psd1")))
            {
                throw new InvalidOperationException($"the module layout is not built ({dir}); run `dotnet msbuild build/build.proj -t:ModuleLayout` first");
            }

            return dir;
        }
    }

    public static string Deps => Path.Combine(Directory, "deps");

    public static string CmdletsAssembly => Path.Combine(Directory, "EtPhoneHome.Cmdlets.dll");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EtPhoneHome.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }
}
