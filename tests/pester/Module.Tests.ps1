#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of the built module (out/EtPhoneHome; `./build.sh build` makes it). build.ps1 -Task Test runs
# them in a child pwsh, so the binary module loads into a fresh process. Tests that need a second process of
# their own (coexistence with another copy of a dependency) start one.

BeforeAll {
    $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
    $script:ManifestPath = Join-Path $script:ModuleDir 'EtPhoneHome.psd1'
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $env:ETPHONEHOME_DATA_DIR = $script:DataDir
    Import-Module $script:ManifestPath -Force
    $script:Manifest = Import-PowerShellDataFile $script:ManifestPath
    $script:Cmdlets = @($script:Manifest.CmdletsToExport)
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    Remove-Item Env:ETPHONEHOME_DATA_DIR -ErrorAction SilentlyContinue
}

Describe 'Import' {
    It 'passes Test-ModuleManifest' {
        $info = Test-ModuleManifest $script:ManifestPath
        $info.PowerShellVersion | Should -Be ([version]'7.4')
        $info.CompatiblePSEditions | Should -Be @('Core')
        $info.PrivateData.PSData.ProjectUri | Should -Not -BeNullOrEmpty
    }

    It 'exports exactly the cmdlets the manifest lists' {
        $exported = (Get-Command -Module EtPhoneHome).Name | Sort-Object
        $exported | Should -Be ($script:Cmdlets | Sort-Object)
        (Get-Command -Module EtPhoneHome | Where-Object CommandType -NE 'Cmdlet') | Should -BeNullOrEmpty
    }

    It 'loads its dependencies in the private context and nothing of them in the default one' {
        Get-EphClient -ErrorAction SilentlyContinue | Out-Null   # touches Core and SQLite
        $private = [System.Runtime.Loader.AssemblyLoadContext]::All | Where-Object Name -EQ 'EtPhoneHome.Dependencies'
        $private | Should -HaveCount 1
        $private.Assemblies.GetName().Name | Should -Contain 'EtPhoneHome.Core'
        $private.Assemblies.GetName().Name | Should -Contain 'Microsoft.Data.Sqlite'
        $default = [System.Runtime.Loader.AssemblyLoadContext]::Default.Assemblies.GetName().Name
        $default | Should -Contain 'EtPhoneHome.Cmdlets'
        $default | Should -Not -Contain 'EtPhoneHome.Core'
    }

    It 'works in a session that already loaded another copy of Microsoft.Data.Sqlite' {
        # A second process: the other copy must be in the default context before the module is imported.
        $other = Get-ChildItem (Join-Path $PSScriptRoot '../unit/bin') -Recurse -Filter Microsoft.Data.Sqlite.dll | Select-Object -First 1
        if (-not $other) { $other = Get-Item (Join-Path $script:ModuleDir 'deps/Microsoft.Data.Sqlite.dll') }
        $script = "Add-Type -Path '$($other.FullName)'; `$env:ETPHONEHOME_DATA_DIR = '$($script:DataDir)'; Import-Module '$($script:ManifestPath)'; " +
            "@(Get-EphClient).Count; ([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Microsoft.Data.Sqlite' }).Count"
        $output = & pwsh -NoProfile -NonInteractive -Command $script
        $LASTEXITCODE | Should -Be 0
        $output[-1] | Should -Be '2'   # ours and the other copy, side by side
    }
}

Describe 'Help' {
    It 'has a synopsis, a description and at least two examples for <_>' -ForEach @(Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1')).CmdletsToExport {
        $help = Get-Help $_ -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^\s*$_"   # not the auto-generated syntax stub
        $help.description | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
    }

    It 'documents every parameter of <_>' -ForEach @(Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1')).CmdletsToExport {
        $command = Get-Command $_
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        $documented = (Get-Help $_ -Full).parameters.parameter.name
        foreach ($name in $command.Parameters.Keys | Where-Object { $_ -notin $common -or $_ -in 'WhatIf', 'Confirm' }) {
            $documented | Should -Contain $name
        }
    }

    It 'has the about_EtPhoneHome topic' {
        (Get-Help about_EtPhoneHome | Out-String) | Should -Match 'session secret'
    }
}

Describe 'Formats' {
    It 'shows a client table with Name, Online, Tags, Purpose and LastSeen' {
        $view = Get-FormatData -TypeName EtPhoneHome.EphClient -PowerShellVersion $PSVersionTable.PSVersion
        $view | Should -Not -BeNullOrEmpty
        $table = $view.FormatViewDefinition | Where-Object { $_.Control -is [System.Management.Automation.TableControl] }
        $table.Control.Headers.Label | Should -Be @('Name', 'Online', 'Tags', 'Purpose', 'LastSeen')
    }

    It 'has a view for <_>' -ForEach @('EtPhoneHome.EphCommandResult', 'EtPhoneHome.EphConfigurationInfo') {
        Get-FormatData -TypeName $_ | Should -Not -BeNullOrEmpty
    }

    It 'formats the configuration without error' {
        { Get-EphConfiguration | Format-List | Out-String } | Should -Not -Throw
    }
}

Describe 'Configuration' {
    AfterEach { Set-EphConfiguration -Reset }

    It 'takes the data directory from the environment by default' {
        $c = Get-EphConfiguration
        $c.DataDirectory | Should -Be ([IO.Path]::GetFullPath($script:DataDir))
        $c.DataDirectorySource | Should -Be 'Environment'
    }

    It 'uses the session data directory and resets to the environment' {
        $other = New-Item -ItemType Directory -Path (Join-Path $script:DataDir 'other')
        Set-EphConfiguration -DataDirectory $other.FullName -PassThru | Select-Object -ExpandProperty DataDirectorySource | Should -Be 'Session'
        (Get-EphConfiguration).DataDirectory | Should -Be $other.FullName
        Set-EphConfiguration -Reset
        (Get-EphConfiguration).DataDirectorySource | Should -Be 'Environment'
    }

    It 'changes nothing with -WhatIf' {
        $before = Get-EphConfiguration
        Set-EphConfiguration -DataDirectory $PSScriptRoot -WhatIf
        (Get-EphConfiguration).DataDirectory | Should -Be $before.DataDirectory
    }

    It 'refuses a directory that does not exist with DataDirectoryNotFound' {
        { Set-EphConfiguration -DataDirectory (Join-Path $script:DataDir 'missing') } | Should -Throw -ErrorId 'DataDirectoryNotFound,EtPhoneHome.SetEphConfigurationCommand'
    }

    It 'says which registry local mode opens and where that came from, never with its password' {
        $c = Get-EphConfiguration
        $c.RegistryEngine | Should -Be 'SQLite'
        $c.Registry | Should -Be $c.RegistryFile
        $c.RegistrySource | Should -Be 'Default'

        $secret = Join-Path $script:DataDir "pg-$(Get-Random).conf"
        Set-Content -LiteralPath $secret -Value 'Host=127.0.0.1;Port=5999;Database=fleet;Username=ops;Password=hunter2-secret'
        if (-not $IsWindows) { chmod 600 $secret }
        Set-EphConfiguration -Registry "file:$secret"
        $c = Get-EphConfiguration
        $c.RegistryEngine | Should -Be 'PostgreSQL'
        $c.RegistrySource | Should -Be 'Session'
        $c.Registry | Should -Match '127\.0\.0\.1.*5999.*fleet'
        ($c | Format-List * | Out-String) | Should -Not -Match 'hunter2'

        Set-EphConfiguration -Reset
        $env:ETPHONEHOME_REGISTRY = 'sqlite'
        try { (Get-EphConfiguration).RegistrySource | Should -Be 'Environment' }
        finally { Remove-Item Env:ETPHONEHOME_REGISTRY }
    }

    It 'accepts Get-EphConfiguration output from the pipeline' {
        $saved = Get-EphConfiguration
        $saved | Set-EphConfiguration
        (Get-EphConfiguration).DataDirectorySource | Should -Be 'Session'
        (Get-EphConfiguration).DataDirectory | Should -Be $saved.DataDirectory
    }
}

Describe 'Completion' {
    It 'registers completers for the client parameters' {
        (Get-Command Get-EphClient).Parameters['Name'].Attributes.Where({ $_ -is [ArgumentCompleter] }).Type.Name | Should -Be 'ClientNameCompleter'
        (Get-Command Invoke-EphCommand).Parameters['ClientId'].Attributes.Where({ $_ -is [ArgumentCompleter] }).Type.Name | Should -Be 'ClientIdCompleter'
    }

    It 'completes nothing (and does not fail) against an empty registry' {
        $result = TabExpansion2 -inputScript 'Get-EphClient -Name ' -cursorColumn 'Get-EphClient -Name '.Length
        $result.CompletionMatches | Should -BeNullOrEmpty
    }
}

Describe 'Invoke-EphCommand' {
    It 'refuses an unknown client as a whole (terminating ClientNotFound) and runs nothing' {
        $marker = Join-Path $script:DataDir 'eph-whatif'
        { Invoke-EphCommand -ClientId 'no-such-client' -Command "touch $marker" -WhatIf } | Should -Throw -ErrorId 'ClientNotFound,*'
        Test-Path $marker | Should -BeFalse
    }

    It 'rejects a throttle outside 1..1024' {
        { Invoke-EphCommand -ClientId 'x' -Command 'id' -ThrottleLimit 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,EtPhoneHome.InvokeEphCommandCommand'
    }
}

Describe 'Get-EphClient' {
    It 'reports a literal name that matches nothing as ClientNotFound' {
        Get-EphClient -Name 'nonexistent' -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'is silent for a wildcard that matches nothing' {
        Get-EphClient -Name 'nonexistent-*' -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'binds piped objects with an Id to -Id' {
        [pscustomobject]@{ Id = '00000000-0000-0000-0000-000000000000' } | Get-EphClient -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientNotFound,*'
    }
}
