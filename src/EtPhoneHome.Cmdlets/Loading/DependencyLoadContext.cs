using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace EtPhoneHome.Loading;

/// <summary>
/// The private load context of the module's dependencies (EtPhoneHome.Core and .Protocol, Microsoft.Data.Sqlite,
/// SQLitePCLRaw and its native library, and whatever Core needs later). Everything in the module's deps/ folder
/// loads here, so another module's copy of the same assembly in PowerShell's default context never meets ours.
/// Framework assemblies (not in deps/) fall through to the default context.
/// </summary>
internal sealed class DependencyLoadContext : AssemblyLoadContext
{
    /// <summary>The context's name, as PowerShell's diagnostics and [AssemblyLoadContext]::All show it.</summary>
    public const string ContextName = "EtPhoneHome.Dependencies";

    private readonly List<string> _nativeLibraries = [];

    public DependencyLoadContext(string dependencyDirectory)
        : base(ContextName, isCollectible: false)
    {
        DependencyDirectory = Path.GetFullPath(dependencyDirectory);
    }

    /// <summary>The module's deps/ folder.</summary>
    public string DependencyDirectory { get; }

    /// <summary>Full paths of the native libraries this context loaded (each once), in order.</summary>
    public IReadOnlyList<string> NativeLibraries
    {
        get
        {
            lock (_nativeLibraries)
            {
                return [.. _nativeLibraries];
            }
        }
    }

    /// <summary>True when deps/ holds an assembly of that simple name.</summary>
    public bool Contains(AssemblyName name) => name.Name is { Length: > 0 } simple && File.Exists(AssemblyPath(simple));

    private string AssemblyPath(string simpleName) => Path.Combine(DependencyDirectory, simpleName + ".dll");

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // Only what the module ships; null lets the default context supply the framework.
        return Contains(assemblyName) ? LoadFromAssemblyPath(AssemblyPath(assemblyName.Name!)) : null;
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        foreach (var candidate in NativeCandidates(DependencyDirectory, unmanagedDllName))
        {
            if (File.Exists(candidate))
            {
                var handle = NativeLibrary.Load(candidate);
                lock (_nativeLibraries)
                {
                    // The runtime asks once per P/Invoke target; the loader hands back the same mapping each time.
                    if (!_nativeLibraries.Contains(candidate))
                    {
                        _nativeLibraries.Add(candidate);
                    }
                }

                return handle;
            }
        }

        // Not ours: the default probing (system libraries) applies.
        return IntPtr.Zero;
    }

    /// <summary>
    /// Where a native library may live under deps/: runtimes/&lt;rid&gt;/native/ for the current platform's RIDs, most
    /// specific first, with the platform's file-name conventions (libX.so, libX.dylib, X.dll).
    /// </summary>
    public static IEnumerable<string> NativeCandidates(string dependencyDirectory, string libraryName)
    {
        ArgumentException.ThrowIfNullOrEmpty(libraryName);
        foreach (var rid in CurrentRuntimeIdentifiers())
        {
            var dir = Path.Combine(dependencyDirectory, "runtimes", rid, "native");
            foreach (var file in NativeFileNames(libraryName))
            {
                yield return Path.Combine(dir, file);
            }
        }
    }

    /// <summary>The file names a native library may have on this OS.</summary>
    public static IEnumerable<string> NativeFileNames(string libraryName)
    {
        var hasExtension = Path.HasExtension(libraryName);
        if (OperatingSystem.IsWindows())
        {
            yield return hasExtension ? libraryName : libraryName + ".dll";
            yield break;
        }

        var suffix = OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        var bare = libraryName.StartsWith("lib", StringComparison.Ordinal) ? libraryName : "lib" + libraryName;
        yield return hasExtension ? libraryName : bare + suffix;
        if (!hasExtension)
        {
            yield return libraryName + suffix;
        }
    }

    /// <summary>The RIDs whose native folders apply to this process, most specific first (e.g. linux-musl-x64, linux-x64).</summary>
    public static IReadOnlyList<string> CurrentRuntimeIdentifiers()
    {
        var arch = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x64",
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            Architecture.Arm => "arm",
            var other => other.ToString().ToLowerInvariant(),
        };

        if (OperatingSystem.IsWindows())
        {
            return [$"win-{arch}"];
        }

        if (OperatingSystem.IsMacOS())
        {
            return [$"osx-{arch}"];
        }

        return IsMusl() ? [$"linux-musl-{arch}", $"linux-{arch}"] : [$"linux-{arch}"];
    }

    // Alpine and other musl systems carry the musl loader instead of glibc's.
    private static bool IsMusl() =>
        Directory.Exists("/lib") && Directory.EnumerateFiles("/lib", "ld-musl-*.so.1").Any();
}
