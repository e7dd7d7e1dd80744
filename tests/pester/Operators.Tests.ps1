#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of Add-, Get-, Set- and Remove-EphOperator against a fresh registry (no agents needed): keys made
# with ssh-keygen, roles, the last admin, bad input that changes nothing, and the history.

BeforeAll {
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-operators-" + [guid]::NewGuid())
    $script:KeyDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-opkeys-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir, $script:KeyDir | Out-Null
    Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
    Set-EphConfiguration -DataDirectory $script:DataDir
    Get-EphClient | Out-Null   # creates the registry

    function New-TestKey([string] $Name) {
        $path = Join-Path $script:KeyDir $Name
        & ssh-keygen -q -t ed25519 -N '' -C "$Name@laptop" -f $path | Out-Null
        "$path.pub"
    }
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir, $script:KeyDir -ErrorAction SilentlyContinue
}

Describe 'Operators' {
    It 'adds operators from a key file and from the key text, and lists them' {
        $alice = Add-EphOperator -Name alice -PublicKeyPath (New-TestKey alice) -Role Admin
        $alice.Role | Should -Be ([EtPhoneHome.EphOperatorRole]::Admin)
        $alice.Fingerprint | Should -Match '^SHA256:'
        $bob = Add-EphOperator bob (Get-Content (New-TestKey bob)) -Role Reader
        $bob.Name | Should -Be 'bob'
        (Get-EphOperator).Name | Should -Be @('alice', 'bob')
        (Get-EphOperator -Name 'b*').Name | Should -Be 'bob'
    }

    It 'refuses a bad name or key and changes nothing' {
        Add-EphOperator -Name '-x' -PublicKeyPath (New-TestKey x) -Role Reader -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidOperator,*'
        Add-EphOperator -Name carol -PublicKey 'ssh-ed25519 not-a-key' -Role Reader -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-EphOperator).Name | Should -Be @('alice', 'bob')
    }

    It 'changes a role through the pipeline, and refuses to demote or remove the last admin' {
        (Get-EphOperator -Name bob | Set-EphOperator -Role Operator).Role | Should -Be ([EtPhoneHome.EphOperatorRole]::Operator)
        Set-EphOperator -Name alice -Role Reader -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidOperator,*'
        Remove-EphOperator -Name alice -Confirm:$false -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].Exception.Message | Should -Match 'last active admin'
        (Get-EphOperator -Name alice).Role | Should -Be ([EtPhoneHome.EphOperatorRole]::Admin)
    }

    It 'removes an operator (WhatIf changes nothing), keeps it listed with -IncludeRemoved, and records it all' {
        Remove-EphOperator -Name bob -WhatIf
        (Get-EphOperator).Name | Should -Contain 'bob'
        Remove-EphOperator -Name bob -Confirm:$false
        (Get-EphOperator).Name | Should -Be @('alice')
        (Get-EphOperator -IncludeRemoved | Where-Object Name -EQ bob).Removed | Should -BeTrue
        Get-EphOperator -Name bob -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'OperatorNotFound,*'
        $ops = (Get-EphHistory -Operation add_operator, set_operator_role, remove_operator).Operation
        $ops | Should -Contain 'remove_operator'
        $ops | Should -Contain 'set_operator_role'
        ($ops | Where-Object { $_ -eq 'add_operator' }).Count | Should -Be 2
    }
}
