#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Runs only where pwsh exists. Build first: dotnet build src/EtPhoneHome.Cmdlets (assembles out/EtPhoneHome).

BeforeAll {
    $script:ModuleDir = Join-Path $PSScriptRoot '../../out/EtPhoneHome'
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $env:ETPHONEHOME_DATA_DIR = $script:DataDir
    Import-Module (Join-Path $script:ModuleDir 'EtPhoneHome.psd1') -Force
    $script:Manifest = Import-PowerShellDataFile (Join-Path $script:ModuleDir 'EtPhoneHome.psd1')
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    Remove-Item Env:ETPHONEHOME_DATA_DIR -ErrorAction SilentlyContinue
}

Describe 'EtPhoneHome module' {
    It 'exports exactly the cmdlets the manifest lists' {
        $exported = (Get-Command -Module EtPhoneHome).Name | Sort-Object
        $exported | Should -Be ($script:Manifest.CmdletsToExport | Sort-Object)
    }

    It 'has a synopsis for <_>' -ForEach @('Get-EphClient', 'Invoke-EphCommand') {
        (Get-Help $_).Synopsis | Should -Not -BeNullOrEmpty
        (Get-Help $_).Synopsis | Should -Not -Match '^\s*Get-EphClient|^\s*Invoke-EphCommand'
    }
}

Describe 'Invoke-EphCommand' {
    It 'runs nothing with -WhatIf' {
        $results = Invoke-EphCommand -ClientId 'no-such-client' -Command 'touch /tmp/eph-whatif' -WhatIf -ErrorAction SilentlyContinue
        $results | Should -BeNullOrEmpty
        Test-Path '/tmp/eph-whatif' | Should -BeFalse
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
}
