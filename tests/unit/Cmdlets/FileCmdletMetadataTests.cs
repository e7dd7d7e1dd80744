using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>Metadata of the file cmdlets as PowerShell's binder reads it (CustomAttributeData).</summary>
public sealed class FileCmdletMetadataTests
{
    private static CustomAttributeData[] Params(Type type, string property) =>
        type.GetProperty(property)!.GetCustomAttributesData().Where(d => d.AttributeType == typeof(ParameterAttribute)).ToArray();

    private static object? Named(CustomAttributeData data, string name) =>
        data.NamedArguments.Where(n => n.MemberName == name).Select(n => n.TypedValue.Value).FirstOrDefault();

    private static CustomAttributeData Cmdlet(Type type) => type.GetCustomAttributesData().Single(d => d.AttributeType == typeof(CmdletAttribute));

    [Theory]
    [InlineData(typeof(GetEphFileContentCommand), "Get", "EphFileContent", false)]
    [InlineData(typeof(SetEphFileContentCommand), "Set", "EphFileContent", true)]
    [InlineData(typeof(GetEphChildItemCommand), "Get", "EphChildItem", false)]
    [InlineData(typeof(CopyEphFileCommand), "Copy", "EphFile", true)]
    public void FileCmdlets_TakeClientsFromThePipeline_AndConfirmWhatChangesState(Type type, string verb, string noun, bool changesState)
    {
        var cmdlet = Cmdlet(type);
        Assert.Equal([verb, noun], cmdlet.ConstructorArguments.Select(a => a.Value));
        Assert.Equal(changesState, Named(cmdlet, "SupportsShouldProcess") as bool? ?? false);
        if (changesState)
        {
            Assert.Equal((int)ConfirmImpact.Medium, Named(cmdlet, "ConfirmImpact"));
        }

        Assert.All(Params(type, "InputObject"), p => Assert.Equal(true, Named(p, "ValueFromPipeline")));
        Assert.All(Params(type, "ClientId"), p => Assert.Equal(true, Named(p, "ValueFromPipelineByPropertyName")));
        Assert.NotEmpty(Params(type, "ClientId"));
        Assert.All(Params(type, "All"), p => Assert.Equal(true, Named(p, "Mandatory"))); // -All is its own set
        var aliases = type.GetProperty("ClientId")!.GetCustomAttributesData().Single(d => d.AttributeType == typeof(AliasAttribute));
        Assert.Equal(["Uuid", "Id"], ((IEnumerable<CustomAttributeTypedArgument>)aliases.ConstructorArguments[0].Value!).Select(a => a.Value));
        var path = Assert.Single(Params(type, "Path"));
        Assert.Equal((true, 0), (Named(path, "Mandatory"), Named(path, "Position")));
    }

    [Fact]
    public void CopyEphFile_HasOneSetPerDirection()
    {
        var to = Params(typeof(CopyEphFileCommand), "ToClient").ToList();
        var from = Params(typeof(CopyEphFileCommand), "FromClient").ToList();
        Assert.Equal([CopyEphFileCommand.ToClientSet, CopyEphFileCommand.ToClientAllSet], to.Select(p => Named(p, "ParameterSetName")));
        Assert.Equal([CopyEphFileCommand.FromClientSet, CopyEphFileCommand.FromClientAllSet], from.Select(p => Named(p, "ParameterSetName")));
        Assert.All(to.Concat(from), p => Assert.Equal(true, Named(p, "Mandatory")));
        Assert.Equal(CopyEphFileCommand.ToClientSet, Named(Cmdlet(typeof(CopyEphFileCommand)), "DefaultParameterSetName"));
    }

    [Fact]
    public void SetEphFileContent_TextAndBytesAreSeparateSets()
    {
        Assert.Equal([SetEphFileContentCommand.TextSet, SetEphFileContentCommand.TextAllSet], Params(typeof(SetEphFileContentCommand), "Value").Select(p => Named(p, "ParameterSetName")));
        Assert.Equal([SetEphFileContentCommand.BytesSet, SetEphFileContentCommand.BytesAllSet], Params(typeof(SetEphFileContentCommand), "ByteValue").Select(p => Named(p, "ParameterSetName")));
    }

    [Fact]
    public void InvokeEphCommand_HasTheCommandOptions()
    {
        var type = typeof(InvokeEphCommandCommand);
        foreach (var name in new[] { "Environment", "Shell", "InputText", "WorkingDirectory", "MaxErrors" })
        {
            Assert.Single(Params(type, name));
        }

        Assert.Equal(typeof(EphShell?), type.GetProperty("Shell")!.PropertyType);
        Assert.Equal(Protocol.CommandShells.All, Enum.GetNames<EphShell>().Select(n => n.ToLowerInvariant()));
    }

    [Fact]
    public void FileOutputTypes_AreImmutable_AndHaveViews()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "EtPhoneHome.sln")))
        {
            root = root.Parent!;
        }

        var xml = System.Xml.Linq.XDocument.Load(Path.Combine(root.FullName, "module", "EtPhoneHome.format.ps1xml"));
        var viewed = xml.Descendants("TypeName").Select(e => e.Value).ToHashSet();
        foreach (var type in new[] { typeof(EphFileContent), typeof(EphFileWriteResult), typeof(EphFileEntry), typeof(EphFileTransfer) })
        {
            Assert.True(type.IsSealed);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.Contains(type.FullName!, viewed);
            Assert.Contains("PSComputerName", type.GetProperties().Select(p => p.Name));
        }
    }
}
