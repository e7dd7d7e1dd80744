# Starting and stopping a sandbox (private sshd, hub and agents on 127.0.0.1) for a Pester suite; dot-source it.
# The sandbox runs with --exit-with-parent: if this pwsh dies, it stops its sshd, hub and agents itself.

# Starts eph-sandbox with $Clients agents in a new folder under the temp directory and waits until it prints its data
# directory. Returns @{ Process; Work; DataDir; Log }. Throws (after stopping it) when it does not become ready.
function Start-TestSandbox([int] $Clients, [string] $Name) {
    $sandbox = (Resolve-Path (Join-Path $PSScriptRoot '../../out/bin/eph-sandbox')).Path
    $work = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-$Name-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $work | Out-Null
    $log = Join-Path $work 'sandbox.out'
    $err = Join-Path $work 'sandbox.err'
    # Without --once the sandbox keeps running until it gets SIGTERM; it prints its data directory when ready.
    $process = Start-Process -FilePath $sandbox -ArgumentList '--clients', "$Clients", '--exit-with-parent', '--work', (Join-Path $work 'env') `
        -RedirectStandardOutput $log -RedirectStandardError $err -PassThru
    $sb = @{ Process = $process; Work = $work; DataDir = $null; Log = $log; FleetUser = $null }
    $deadline = [DateTime]::UtcNow.AddSeconds(120)
    while (-not $sb.DataDir -and [DateTime]::UtcNow -lt $deadline -and -not $process.HasExited) {
        Start-Sleep -Milliseconds 200   # polling a file another process writes; bounded by the deadline
        $line = Get-Content $log -ErrorAction SilentlyContinue | Where-Object { $_ -match 'clients --data (\S+)' } | Select-Object -First 1
        if ($line -and $line -match 'clients --data (\S+)') { $sb.DataDir = $Matches[1] }
    }
    if ($sb.DataDir) {
        $account = Get-Content $log -ErrorAction SilentlyContinue | Where-Object { $_ -match 'fleet account (\S+) ' } | Select-Object -First 1
        if ($account -match 'fleet account (\S+) ') { $sb.FleetUser = $Matches[1] }
    }
    if (-not $sb.DataDir) {
        $why = "$(Get-Content $log -Raw -ErrorAction SilentlyContinue) $(Get-Content $err -Raw -ErrorAction SilentlyContinue)"
        Stop-TestSandbox $sb
        throw "the sandbox did not become ready: $why"
    }
    $sb
}

# SIGTERM (not Stop-Process, which kills): the sandbox stops its sshd, hub and agents itself; then the folder goes.
function Stop-TestSandbox($Sandbox) {
    if (-not $Sandbox) { return }
    $process = $Sandbox.Process
    if ($process -and -not $process.HasExited) {
        & kill -TERM $process.Id
        if (-not $process.WaitForExit(30000)) { $process.Kill($true) }
    }
    Remove-Item -Recurse -Force $Sandbox.Work -ErrorAction SilentlyContinue
}
