using System.Text;

// Usage (paths relative to the current directory):
//   help    --assembly <Cmdlets.dll> --docs <docs/help> --out <dir>
//   manifest --source <module/EtPhoneHome.psd1> --version <x.y.z> --out <file>
//   layout  --staging <dir> --files <module/files.txt> --out <module dir>
//   package --module <module dir> --id EtPhoneHome --out <dir>
namespace EtPhoneHome.ModuleTool
{
    /// <summary>Entry point: one command per build step.</summary>
    internal static class ModuleToolProgram
    {
        public static int Main(string[] args)
        {
            if (args.Length == 0)
            {
                Console.Error.WriteLine("usage: EtPhoneHome.ModuleTool help|layout|package --option value ...");
                return 2;
            }

            var options = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 1; i + 1 < args.Length; i += 2)
            {
                options[args[i].TrimStart('-')] = args[i + 1];
            }

            string Option(string name) => options.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");

            try
            {
                switch (args[0])
                {
                    case "help":
                    {
                        var result = HelpBuild.Run(Option("assembly"), Option("docs"), Option("out"));
                        foreach (var error in result.Errors)
                        {
                            Console.Error.WriteLine($"error EPHHELP: {error}");
                        }

                        if (result.Errors.Count > 0)
                        {
                            Console.Error.WriteLine($"help: {result.Errors.Count} problem(s); every cmdlet and parameter needs help that matches the compiled cmdlets");
                            return 1;
                        }

                        Console.WriteLine($"help: {result.Commands} cmdlet(s), {result.AboutTopics} about topic(s) -> {Option("out")}");
                        return 0;
                    }

                    case "layout":
                    {
                        var list = ModuleFileList.Parse(File.ReadAllLines(Option("files")));
                        var errors = list.Check(Option("staging"));
                        foreach (var error in errors)
                        {
                            Console.Error.WriteLine($"error EPHLAYOUT: {error}");
                        }

                        if (errors.Count > 0)
                        {
                            return 1;
                        }

                        list.CopyTo(Option("staging"), Option("out"));
                        Console.WriteLine($"layout: {list.Files.Count} file(s) -> {Option("out")}");
                        return 0;
                    }

                    case "manifest":
                    {
                        var text = ModuleManifest.StampVersion(File.ReadAllText(Option("source")), Option("version"));
                        var manifest = ModuleManifest.Parse(text);
                        File.WriteAllText(Option("out"), text, new UTF8Encoding(false));
                        Console.WriteLine($"manifest: version {manifest.ModuleVersion}, {manifest.CmdletsToExport.Count} cmdlet(s)");
                        return 0;
                    }

                    case "package":
                    {
                        var path = GalleryPackage.Write(Option("module"), Option("id"), Option("out"));
                        Console.WriteLine($"package: {path}");
                        return 0;
                    }

                    default:
                        Console.Error.WriteLine($"unknown command '{args[0]}'");
                        return 2;
                }
            }
            catch (Exception ex) when (ex is ArgumentException or IOException or FormatException or UnauthorizedAccessException or InvalidOperationException)
            {
                Console.Error.WriteLine($"error EPHTOOL: {ex.Message}");
                return 1;
            }
        }
    }

    internal sealed record HelpBuildResult(int Commands, int AboutTopics, IReadOnlyList<string> Errors);

    /// <summary>The help step: read cmdlets and pages, validate, write MAML and about topics.</summary>
    internal static class HelpBuild
    {
        public static HelpBuildResult Run(string assemblyPath, string docsDirectory, string outputDirectory)
        {
            var commands = CmdletMetadataReader.Read(assemblyPath);
            var files = Directory.GetFiles(docsDirectory, "*.md").Order(StringComparer.Ordinal).ToList();
            var about = files.Where(f => Path.GetFileName(f).StartsWith("about_", StringComparison.OrdinalIgnoreCase)).ToList();
            var pages = files.Except(about).Select(f => HelpMarkdown.Parse(f, File.ReadAllText(f))).ToList();
            var errors = HelpValidator.Validate(commands, pages);
            if (errors.Count > 0)
            {
                return new HelpBuildResult(commands.Count, about.Count, errors);
            }

            Directory.CreateDirectory(outputDirectory);
            var maml = MamlWriter.Build(commands, pages);
            var helpFile = Path.Combine(outputDirectory, Path.GetFileName(assemblyPath) + "-Help.xml");
            using (var writer = System.Xml.XmlWriter.Create(helpFile, new System.Xml.XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false) }))
            {
                maml.Save(writer);
            }

            foreach (var topic in about)
            {
                var name = Path.GetFileNameWithoutExtension(topic) + ".help.txt";
                File.WriteAllText(Path.Combine(outputDirectory, name), AboutText.Convert(File.ReadAllText(topic)), new UTF8Encoding(false));
            }

            return new HelpBuildResult(commands.Count, about.Count, errors);
        }
    }
}
