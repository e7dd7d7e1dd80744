using System.Reflection;
using System.Runtime.Loader;

namespace EtPhoneHome.Loading;

/// <summary>
/// Connects PowerShell's default load context to the module's private one. The cmdlets assembly loads in the
/// default context (PowerShell only shows types from there) and references EtPhoneHome.Core/.Protocol; those
/// are not next to it but in deps/, so the default context fails to find them and raises Resolving, which this
/// answers from the private context. Everything those assemblies reference then resolves inside the private
/// context. Only the module's own assemblies are answered: another module asking for Microsoft.Data.Sqlite
/// never gets ours.
/// </summary>
internal static class DependencyResolver
{
    /// <summary>Folder under the module directory that holds the private dependencies.</summary>
    public const string DependencyFolder = "deps";

    /// <summary>Prefix of the assemblies the cmdlets reference directly and the default context may ask for.</summary>
    public const string OwnAssemblyPrefix = "EtPhoneHome.";

    private static readonly object s_gate = new();
    private static DependencyLoadContext? s_context;
    private static bool s_hooked;

    /// <summary>The private context once registered; null before, or when the module runs from a flat build output.</summary>
    public static DependencyLoadContext? Context
    {
        get
        {
            lock (s_gate)
            {
                return s_context;
            }
        }
    }

    /// <summary>
    /// Hooks the default context for the module in <paramref name="moduleDirectory"/>. Idempotent. Returns false
    /// (and changes nothing) when the directory has no deps/ folder, as in a plain build output where every
    /// assembly sits next to the cmdlets and loads normally.
    /// </summary>
    public static bool Register(string moduleDirectory)
    {
        var deps = Path.Combine(moduleDirectory, DependencyFolder);
        if (!Directory.Exists(deps))
        {
            return false;
        }

        lock (s_gate)
        {
            // One context per process: a re-import reuses it, since assemblies cannot be unloaded from it.
            s_context ??= new DependencyLoadContext(deps);
            if (!s_hooked)
            {
                AssemblyLoadContext.Default.Resolving += OnResolving;
                s_hooked = true;
            }
        }

        return true;
    }

    /// <summary>Removes the hook (Remove-Module). Assemblies already loaded stay loaded.</summary>
    public static void Unregister()
    {
        lock (s_gate)
        {
            if (s_hooked)
            {
                AssemblyLoadContext.Default.Resolving -= OnResolving;
                s_hooked = false;
            }
        }
    }

    /// <summary>True when the default context's request for <paramref name="name"/> is the module's to answer.</summary>
    public static bool ShouldResolve(DependencyLoadContext context, AssemblyName name) =>
        name.Name is { } simple
        && simple.StartsWith(OwnAssemblyPrefix, StringComparison.Ordinal)
        && context.Contains(name);

    private static Assembly? OnResolving(AssemblyLoadContext requester, AssemblyName name)
    {
        var context = Context;
        return context is not null && ShouldResolve(context, name) ? context.LoadFromAssemblyName(name) : null;
    }
}
