#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Backup-EphRegistry and Restore-EphRegistry as an operator uses them: a file path relative to the current location,
# -WhatIf, a damaged backup refused before any prompt.

BeforeAll {
    $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
    $script:Root = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-maint-" + [guid]::NewGuid())
    $script:DataDir = Join-Path $script:Root 'data'
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    Import-Module (Join-Path $script:ModuleDir 'EtPhoneHome.psd1') -Force
    Set-EphConfiguration -DataDirectory $script:DataDir
    Get-EphClient | Out-Null   # creates the registry of the empty data directory
}

AfterAll {
    Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:Root -ErrorAction SilentlyContinue
}

Describe 'Backup-EphRegistry and Restore-EphRegistry' {
    It 'backs up to a path relative to the current location, checked and owner-only' {
        Push-Location $script:Root
        try {
            $check = Backup-EphRegistry -Path 'nightly.db'
        }
        finally { Pop-Location }
        $check.PSObject.TypeNames[0] | Should -Be 'EtPhoneHome.EphRegistryCheck'
        $check.Ok | Should -BeTrue
        $check.Path | Should -Be (Join-Path $script:Root 'nightly.db')
        if (-not $IsWindows) { (Get-Item $check.Path).UnixMode | Should -Be '-rw-------' }
        { Backup-EphRegistry -Path $check.Path } | Should -Throw -ErrorId 'RegistryBackupFailed,*'
        (Backup-EphRegistry -Path $check.Path -Force).Ok | Should -BeTrue
    }

    It 'changes nothing with -WhatIf, and refuses a damaged backup before asking' {
        $backup = Join-Path $script:Root 'nightly.db'
        Restore-EphRegistry -Path $backup -WhatIf
        Get-ChildItem $script:DataDir -Filter 'registry.db.replaced-*' | Should -BeNullOrEmpty

        $junk = Join-Path $script:Root 'junk.db'
        Set-Content -Path $junk -Value ('x' * 5000)
        { Restore-EphRegistry -Path $junk -Confirm:$false } | Should -Throw -ErrorId 'RegistryRestoreFailed,*'
        Get-ChildItem $script:DataDir -Filter 'registry.db.replaced-*' | Should -BeNullOrEmpty
    }

    It 'restores and keeps the file it replaced' {
        $result = Restore-EphRegistry -Path (Join-Path $script:Root 'nightly.db') -Confirm:$false
        $result.Ok | Should -BeTrue
        Get-ChildItem $script:DataDir -Filter 'registry.db.replaced-*' | Should -HaveCount 1
        Get-EphClient | Should -BeNullOrEmpty
    }
}
