using System.Management.Automation;

namespace EtPhoneHome.Loading;

/// <summary>
/// Runs when PowerShell imports the module: points the default load context at the private dependency context
/// before any cmdlet touches Core. Holds no PowerShell state of its own.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport()
    {
        var directory = Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location);
        if (!string.IsNullOrEmpty(directory))
        {
            DependencyResolver.Register(directory);
        }
    }

    public void OnRemove(PSModuleInfo psModuleInfo) => DependencyResolver.Unregister();
}
