#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of Remove-EphClientKey -Pending against an empty registry and one seeded with pending keys and an
# approved client (no agents needed): what goes, what stays, -WhatIf, the history, and a bad age.

BeforeAll {
    . (Join-Path $PSScriptRoot 'SampleObjects.ps1')
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-purge-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
    Set-EphConfiguration -DataDirectory $script:DataDir

    # Records pending keys through Core's registry in the module's private load context, as the hub does.
    function Add-PendingKey([string[]] $Fingerprint) {
        Get-EphClientKey | Out-Null   # loads Core
        $core = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'EtPhoneHome.Core' } | Select-Object -First 1
        $directory = $core.GetType('EtPhoneHome.Core.DataDirectory')::new($script:DataDir)
        $registry = $core.GetType('EtPhoneHome.Core.Registry.SqliteRegistry')::Open($directory, [TimeProvider]::System)
        try {
            foreach ($fp in $Fingerprint) {
                $identity = [Activator]::CreateInstance($core.GetType('EtPhoneHome.Core.Registry.AgentIdentity'))
                $identity.Hostname = "host-of-$($fp.Substring(7))"
                $registry.RecordPendingKey($fp, $null, $identity) | Out-Null
            }
        }
        finally {
            $registry.Dispose()
        }
    }
}

AfterAll {
    Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
}

Describe 'Remove-EphClientKey -Pending' {
    It 'removes nothing and writes nothing in an empty registry' {
        Remove-EphClientKey -Pending -OlderThan 0 -Confirm:$false -ErrorVariable err | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'is declared High impact with -WhatIf and -Confirm, and needs -Pending' {
        $command = Get-Command Remove-EphClientKey
        $command.Parameters.Keys | Should -Contain 'WhatIf'
        $command.Parameters['Pending'].Attributes.Where({ $_ -is [Parameter] }).Mandatory | Should -BeTrue
        $command.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false).ConfirmImpact | Should -Be 'High'
        $command.Parameters['OlderThan'].ParameterType | Should -Be ([Nullable[TimeSpan]])
    }

    Context 'with pending keys and an approved client' {
        BeforeAll {
            Add-SeededClient -DataDirectory $script:DataDir -Clients @(@{ Uuid = '3f2a9c1e-0000-4000-8000-00000000aaaa'; DisplayName = 'web-01' })
            Add-PendingKey 'SHA256:flood-1', 'SHA256:flood-2'
        }

        It 'changes nothing with -WhatIf' {
            Remove-EphClientKey -Pending -OlderThan 0 -WhatIf | Should -BeNullOrEmpty
            Get-EphClientKey -Pending | Should -HaveCount 2
        }

        It 'keeps keys seen within the default age of 7 days' {
            Remove-EphClientKey -Pending -Confirm:$false | Should -BeNullOrEmpty
            Get-EphClientKey -Pending | Should -HaveCount 2
        }

        It 'removes every pending key with -OlderThan 0, writes them, and leaves the approved key' {
            $removed = Remove-EphClientKey -Pending -OlderThan 0 -Confirm:$false
            $removed | Should -HaveCount 2
            $removed[0] | Should -BeOfType 'EtPhoneHome.EphClientKey'
            ($removed.Fingerprint | Sort-Object) | Should -Be @('SHA256:flood-1', 'SHA256:flood-2')
            $removed.Status | Should -Be @('Pending', 'Pending')
            Get-EphClientKey -Pending | Should -BeNullOrEmpty
            (Get-EphClientKey).Status | Should -Be @('Approved')
        }

        It 'records the purge in the history with the operator and the pwsh surface' {
            $entry = Get-EphHistory -Operation purge_keys | Where-Object Status -eq 'Succeeded' | Select-Object -First 1
            $entry.Surface | Should -Be 'pwsh'
            $entry.Actor | Should -Be ([Environment]::UserName)
            $entry.Detail | Should -BeLike '2 pending key(s) unseen for more than *s: SHA256:flood-*'
        }
    }

    It 'refuses a negative age as InvalidKeyAge' {
        { Remove-EphClientKey -Pending -OlderThan '-01:00:00' -Confirm:$false } | Should -Throw -ErrorId 'InvalidKeyAge,EtPhoneHome.RemoveEphClientKeyCommand'
    }
}
