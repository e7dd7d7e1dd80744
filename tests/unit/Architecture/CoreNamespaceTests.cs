using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Architecture;

/// <summary>
/// Core's namespaces form no cycle: read from the built assembly (signatures, base types, fields, locals and every
/// type, method and field a method body names), so a dependency through a lambda or a generic argument counts too.
/// </summary>
public sealed class CoreNamespaceTests
{
    private const string Root = "EtPhoneHome.Core";

    [Fact]
    public void CoresNamespaces_FormNoCycle()
    {
        var graph = NamespaceGraph.Of(typeof(SqliteRegistry).Assembly.Location, Root);
        Assert.Contains("EtPhoneHome.Core.Registry", graph.Namespaces);
        Assert.Contains("EtPhoneHome.Core.Operations", graph.Namespaces);
        Assert.True(graph.Edges.Count > 0, "no dependency between Core's namespaces was found: the reader is broken");

        var cycle = graph.FindCycle();
        Assert.True(cycle is null, cycle is null ? "" : "Core's namespaces form a cycle: " + graph.Describe(cycle));
    }

    [Fact]
    public void TheReader_FindsACycle_WhenThereIsOne()
    {
        var graph = new NamespaceGraph(["A", "B", "C"]);
        graph.Add("A", "B", "A.X", "B.Y");
        graph.Add("B", "C", "B.Y", "C.Z");
        Assert.Null(graph.FindCycle());
        graph.Add("C", "A", "C.Z", "A.X");
        Assert.Equal(["A", "B", "C", "A"], graph.FindCycle());
    }

    [Fact]
    public void TheReader_SeesRegistrysOwnDependencies()
    {
        // The operations use the registry's records (RemoveReport holds a RemoveOutcome); a reader that misses that
        // edge would miss the one back just as well and find no cycle where there is one.
        var graph = NamespaceGraph.Of(typeof(SqliteRegistry).Assembly.Location, Root);
        Assert.Contains(("EtPhoneHome.Core.Operations", "EtPhoneHome.Core.Registry"), graph.Edges.Keys);
    }
}

/// <summary>Which namespace of an assembly uses which, with one example of each dependency.</summary>
internal sealed class NamespaceGraph(IEnumerable<string> namespaces)
{
    private static readonly Dictionary<short, OperandType> s_operands = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value, o => o.OperandType);

    public SortedSet<string> Namespaces { get; } = new(namespaces, StringComparer.Ordinal);

    /// <summary>(from, to) → an example: a type of the first that uses a type of the second.</summary>
    public Dictionary<(string From, string To), (string User, string Used)> Edges { get; } = [];

    public void Add(string from, string to, string user, string used)
    {
        if (from != to)
        {
            Edges.TryAdd((from, to), (user, used));
        }
    }

    public static NamespaceGraph Of(string assemblyPath, string root)
    {
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        var md = pe.GetMetadataReader();
        var types = md.TypeDefinitions.ToList();
        var graph = new NamespaceGraph(types.Select(t => NamespaceOf(md, t)).Where(n => InScope(n, root)).Distinct());
        foreach (var handle in types)
        {
            var from = NamespaceOf(md, handle);
            if (!InScope(from, root))
            {
                continue;
            }

            var user = NameOf(md, handle);
            var used = new HashSet<TypeDefinitionHandle>();
            var provider = new Collector(used);
            var type = md.GetTypeDefinition(handle);
            AddType(md, type.BaseType, provider);
            foreach (var i in type.GetInterfaceImplementations())
            {
                AddType(md, md.GetInterfaceImplementation(i).Interface, provider);
            }

            foreach (var f in type.GetFields())
            {
                md.GetFieldDefinition(f).DecodeSignature(provider, null);
            }

            foreach (var p in type.GetProperties())
            {
                md.GetPropertyDefinition(p).DecodeSignature(provider, null);
            }

            foreach (var m in type.GetMethods())
            {
                var method = md.GetMethodDefinition(m);
                method.DecodeSignature(provider, null);
                if (method.RelativeVirtualAddress != 0)
                {
                    AddBody(md, pe.GetMethodBody(method.RelativeVirtualAddress), provider);
                }
            }

            foreach (var target in used)
            {
                var to = NamespaceOf(md, target);
                if (InScope(to, root))
                {
                    graph.Add(from, to, user, NameOf(md, target));
                }
            }
        }

        return graph;
    }

    /// <summary>A cycle as the namespaces along it (the first repeated at the end), or null.</summary>
    public IReadOnlyList<string>? FindCycle()
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 on the path, 2 done
        var path = new List<string>();
        foreach (var start in Namespaces)
        {
            if (Visit(start) is { } cycle)
            {
                return cycle;
            }
        }

        return null;

        List<string>? Visit(string node)
        {
            if (state.GetValueOrDefault(node) == 2)
            {
                return null;
            }

            if (state.GetValueOrDefault(node) == 1)
            {
                return [.. path.Skip(path.IndexOf(node)), node];
            }

            state[node] = 1;
            path.Add(node);
            foreach (var next in Edges.Keys.Where(e => e.From == node).Select(e => e.To).Order(StringComparer.Ordinal))
            {
                if (Visit(next) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
    }

    public string Describe(IReadOnlyList<string> cycle) =>
        string.Join("; ", cycle.Zip(cycle.Skip(1), (a, b) => $"{a} → {b} ({Edges[(a, b)].User} uses {Edges[(a, b)].Used})"));

    private static bool InScope(string ns, string root) => ns == root || ns.StartsWith(root + ".", StringComparison.Ordinal);

    private static TypeDefinitionHandle Outermost(MetadataReader md, TypeDefinitionHandle handle)
    {
        var type = md.GetTypeDefinition(handle);
        while (type.IsNested)
        {
            handle = type.GetDeclaringType();
            type = md.GetTypeDefinition(handle);
        }

        return handle;
    }

    private static string NamespaceOf(MetadataReader md, TypeDefinitionHandle handle) =>
        md.GetString(md.GetTypeDefinition(Outermost(md, handle)).Namespace);

    private static string NameOf(MetadataReader md, TypeDefinitionHandle handle)
    {
        var type = md.GetTypeDefinition(Outermost(md, handle));
        return md.GetString(type.Namespace) + "." + md.GetString(type.Name);
    }

    private static void AddType(MetadataReader md, EntityHandle handle, Collector provider)
    {
        if (handle.IsNil)
        {
            return;
        }

        switch (handle.Kind)
        {
            case HandleKind.TypeDefinition:
                provider.Used.Add((TypeDefinitionHandle)handle);
                break;
            case HandleKind.TypeSpecification:
                md.GetTypeSpecification((TypeSpecificationHandle)handle).DecodeSignature(provider, null);
                break;
        }
    }

    private static void AddMember(MetadataReader md, EntityHandle handle, Collector provider)
    {
        switch (handle.Kind)
        {
            case HandleKind.TypeDefinition or HandleKind.TypeSpecification:
                AddType(md, handle, provider);
                break;
            case HandleKind.MethodDefinition:
                provider.Used.Add(md.GetMethodDefinition((MethodDefinitionHandle)handle).GetDeclaringType());
                break;
            case HandleKind.FieldDefinition:
                provider.Used.Add(md.GetFieldDefinition((FieldDefinitionHandle)handle).GetDeclaringType());
                break;
            case HandleKind.MemberReference:
                var reference = md.GetMemberReference((MemberReferenceHandle)handle);
                AddMember(md, reference.Parent, provider);
                if (reference.GetKind() == MemberReferenceKind.Method)
                {
                    reference.DecodeMethodSignature(provider, null);
                }
                else
                {
                    reference.DecodeFieldSignature(provider, null);
                }

                break;
            case HandleKind.MethodSpecification:
                var spec = md.GetMethodSpecification((MethodSpecificationHandle)handle);
                AddMember(md, spec.Method, provider);
                spec.DecodeSignature(provider, null);
                break;
        }
    }

    private static void AddBody(MetadataReader md, MethodBodyBlock body, Collector provider)
    {
        if (!body.LocalSignature.IsNil)
        {
            md.GetStandaloneSignature(body.LocalSignature).DecodeLocalSignature(provider, null);
        }

        var il = body.GetILReader();
        while (il.RemainingBytes > 0)
        {
            short value = il.ReadByte();
            if (value == 0xFE)
            {
                value = (short)(0xFE00 | il.ReadByte());
            }

            switch (s_operands[value])
            {
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    il.ReadByte();
                    break;
                case OperandType.InlineVar:
                    il.ReadInt16();
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    il.ReadInt64();
                    break;
                case OperandType.InlineSwitch:
                    var count = il.ReadInt32();
                    il.Offset += 4 * count;
                    break;
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType:
                    AddMember(md, MetadataTokens.EntityHandle(il.ReadInt32()), provider);
                    break;
                default: // InlineBrTarget, InlineI, InlineSig, InlineString, ShortInlineR
                    il.ReadInt32();
                    break;
            }
        }
    }

    /// <summary>Collects every type definition a signature names (generic arguments, arrays, pointers included).</summary>
    private sealed class Collector(HashSet<TypeDefinitionHandle> used) : ISignatureTypeProvider<object?, object?>
    {
        public HashSet<TypeDefinitionHandle> Used { get; } = used;

        public object? GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind)
        {
            Used.Add(handle);
            return null;
        }

        public object? GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => null;

        public object? GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, genericContext);

        public object? GetPrimitiveType(PrimitiveTypeCode typeCode) => null;
        public object? GetSZArrayType(object? elementType) => null;
        public object? GetArrayType(object? elementType, ArrayShape shape) => null;
        public object? GetByReferenceType(object? elementType) => null;
        public object? GetPointerType(object? elementType) => null;
        public object? GetPinnedType(object? elementType) => null;
        public object? GetGenericInstantiation(object? genericType, ImmutableArray<object?> typeArguments) => null;
        public object? GetGenericMethodParameter(object? genericContext, int index) => null;
        public object? GetGenericTypeParameter(object? genericContext, int index) => null;
        public object? GetFunctionPointerType(MethodSignature<object?> signature) => null;
        public object? GetModifiedType(object? modifier, object? unmodifiedType, bool isRequired) => null;
    }
}
