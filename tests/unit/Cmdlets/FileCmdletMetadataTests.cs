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

        Assert.Equal(true, Named(Assert.Single(Params(type, "InputObject")), "ValueFromPipeline"));
        Assert.Equal(true, Named(Assert.Single(Params(type, "ClientId")), "ValueFromPipelineByPropertyName"));
        var aliases = type.GetProperty("ClientId")!.GetCustomAttributesData().Single(d => d.AttributeType == typeof(AliasAttribute));
        Assert.Equal(["Uuid", "Id"], ((IEnumerable<CustomAttributeTypedArgument>)aliases.ConstructorArguments[0].Value!).Select(a => a.Value));
        var path = Assert.Single(Params(type, "Path"));
        Assert.Equal((true, 0), (Named(path, "Mandatory"), Named(path, "Position")));
    }

    [Fact]
    public void CopyEphFile_HasOneSetPerDirection()
    {
        var to = Assert.Single(Params(typeof(CopyEphFileCommand), "ToClient"));
        var from = Assert.Single(Params(typeof(CopyEphFileCommand), "FromClient"));
        Assert.Equal((CopyEphFileCommand.ToClientSet, true), (Named(to, "ParameterSetName"), Named(to, "Mandatory")));
        Assert.Equal((CopyEphFileCommand.FromClientSet, true), (Named(from, "ParameterSetName"), Named(from, "Mandatory")));
        Assert.Equal(CopyEphFileCommand.ToClientSet, Named(Cmdlet(typeof(CopyEphFileCommand)), "DefaultParameterSetName"));
    }

    [Fact]
    public void SetEphFileContent_TextAndBytesAreSeparateSets()
    {
        Assert.Equal(SetEphFileContentCommand.TextSet, Named(Assert.Single(Params(typeof(SetEphFileContentCommand), "Value")), "ParameterSetName"));
        Assert.Equal(SetEphFileContentCommand.BytesSet, Named(Assert.Single(Params(typeof(SetEphFileContentCommand), "ByteValue")), "ParameterSetName"));
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
