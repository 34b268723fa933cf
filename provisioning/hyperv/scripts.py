"""The PowerShell run on the Hyper-V host. Bodies are constants; every value they use comes
in through variables set by powershell.render. The first line of each names the step."""

from __future__ import annotations

# Shared helpers: exact-name lookup (Get-VM -Name takes wildcards, a name with [ or * must
# not match other VMs), KVP items of a VM, and waiting for a WMI job.
_HELPERS = r"""
function Find-PasserelleVM([string]$VmName) {
    @(Get-VM | Where-Object { $_.Name -eq $VmName })
}
function Get-PasserelleKvp($Vm) {
    $items = [ordered]@{}
    $system = Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName 'Msvm_ComputerSystem' |
        Where-Object { $_.Name -eq [string]$Vm.Id }
    $settings = Get-CimAssociatedInstance -InputObject $system `
            -ResultClassName 'Msvm_VirtualSystemSettingData' |
        Where-Object { $_.VirtualSystemType -eq 'Microsoft:Hyper-V:System:Realized' }
    $kvp = Get-CimAssociatedInstance -InputObject $settings `
        -ResultClassName 'Msvm_KvpExchangeComponentSettingData'
    foreach ($text in @($kvp.HostExchangeItems)) {
        if (-not $text) { continue }
        $properties = ([xml]$text).INSTANCE.PROPERTY
        $name = ($properties | Where-Object { $_.NAME -eq 'Name' }).VALUE
        $data = ($properties | Where-Object { $_.NAME -eq 'Data' }).VALUE
        $items[$name] = $data
    }
    $items
}
# An NTLM session has no credentials to pass on to a file share; map it with the ones given.
function Connect-PasserelleShare {
    $secret = ConvertTo-SecureString -String $SharePassword -AsPlainText -Force
    $credential = New-Object System.Management.Automation.PSCredential($ShareUser, $secret)
    $folder = Split-Path -Path $Source -Parent
    New-PSDrive -Name 'PasserelleImage' -PSProvider FileSystem -Root $folder `
        -Credential $credential | Out-Null
}
function Wait-PasserelleJob($Result, [string]$What) {
    if ($Result.ReturnValue -eq 4096) {
        $job = [wmi]$Result.Job
        while ($job.JobState -eq 3 -or $job.JobState -eq 4) {
            Start-Sleep -Milliseconds 200
            $job = [wmi]$Result.Job
        }
        if ($job.JobState -ne 7) { throw "${What}: $($job.ErrorDescription)" }
    } elseif ($Result.ReturnValue -ne 0) {
        throw "${What}: WMI error $($Result.ReturnValue)"
    }
}
"""

INSPECT = (
    "# passerelle: inspect\n"
    + _HELPERS
    + r"""
if (-not (Get-Command -Name 'Get-VM' -ErrorAction SilentlyContinue)) {
    throw ('the Hyper-V PowerShell module is missing on this host ' +
        '(Install-WindowsFeature Hyper-V-PowerShell)')
}
$vmHost = Get-VMHost
$vms = foreach ($vmName in $VmNames) {
    $found = @(Find-PasserelleVM $vmName)
    if ($found.Count -eq 0) {
        [ordered]@{ name = $vmName; exists = $false }
    } else {
        $vm = $found[0]
        [ordered]@{
            name = $vmName
            exists = $true
            count = $found.Count
            notes = [string]$vm.Notes
            state = [string]$vm.State
            kvp = Get-PasserelleKvp $vm
        }
    }
}
[ordered]@{
    host = $vmHost.ComputerName
    vm_path = $vmHost.VirtualMachinePath
    switches = @(Get-VMSwitch | ForEach-Object { $_.Name })
    vms = @($vms)
}
"""
)

CHECK_SOURCE = (
    "# passerelle: check-source\n"
    + _HELPERS
    + r"""
if ($ShareUser) {
    Connect-PasserelleShare
}
if (-not (Test-Path -LiteralPath $Source -PathType Leaf)) {
    throw ("the host cannot read the VHDX $Source " +
        '(check the path as the host sees it, and share access)')
}
[ordered]@{ source = $Source; size = (Get-Item -LiteralPath $Source).Length }
"""
)

CREATE = (
    "# passerelle: create\n"
    + _HELPERS
    + r"""
if (@(Find-PasserelleVM $VmName).Count -ne 0) { throw "a VM named '$VmName' already exists" }
if (-not $VmPath) { $VmPath = (Get-VMHost).VirtualMachinePath }
$vmFolder = Join-Path -Path $VmPath -ChildPath $VmName
$diskFolder = Join-Path -Path $vmFolder -ChildPath 'Virtual Hard Disks'
New-Item -ItemType Directory -Path $diskFolder -Force | Out-Null
$disk = Join-Path -Path $diskFolder -ChildPath ($VmName + '.vhdx')
$copied = $false
if (-not (Test-Path -LiteralPath $disk)) {
    if ($ShareUser) {
        Connect-PasserelleShare
    }
    # Copied under a temporary name first: a disk with the final name is always complete.
    $partial = $disk + '.partial'
    Copy-Item -LiteralPath $Source -Destination $partial -Force
    Move-Item -LiteralPath $partial -Destination $disk
    $copied = $true
}
$vm = New-VM -Name $VmName -Generation 2 -MemoryStartupBytes $MemoryBytes `
    -VHDPath $disk -SwitchName $SwitchName -Path $VmPath
Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate 'MicrosoftUEFICertificateAuthority'
Set-VMProcessor -VM $vm -Count $ProcessorCount
Set-VM -VM $vm -Notes $Marker
[ordered]@{ name = $vm.Name; id = [string]$vm.Id; disk = $disk; copied = $copied }
"""
)

SET_KVP = (
    "# passerelle: set-kvp\n"
    + _HELPERS
    + r"""
$vm = @(Find-PasserelleVM $VmName)[0]
if (-not $vm) { throw "no VM named '$VmName'" }
$namespace = 'root\virtualization\v2'
$service = Get-WmiObject -Namespace $namespace -Class 'Msvm_VirtualSystemManagementService'
$system = Get-WmiObject -Namespace $namespace -Class 'Msvm_ComputerSystem' `
    -Filter ("Name='{0}'" -f [string]$vm.Id)
$itemClass = [wmiclass]"\\.\${namespace}:Msvm_KvpExchangeDataItem"
function New-KvpText([string]$Key, [string]$Value) {
    $item = $itemClass.CreateInstance()
    $item.Name = $Key
    $item.Data = $Value
    $item.Source = 0
    $item.PSBase.GetText(1)
}
foreach ($key in $Remove) {
    $text = New-KvpText $key ''
    Wait-PasserelleJob ($service.RemoveKvpItems($system, @($text))) "removing KVP item $key"
}
$existing = Get-PasserelleKvp $vm
foreach ($key in $Items.Keys) {
    $text = New-KvpText $key $Items[$key]
    if ($existing.Contains($key)) {
        Wait-PasserelleJob ($service.ModifyKvpItems($system, @($text))) "changing KVP item $key"
    } else {
        Wait-PasserelleJob ($service.AddKvpItems($system, @($text))) "adding KVP item $key"
    }
}
[ordered]@{ name = $vm.Name; keys = @($Items.Keys) }
"""
)

START = (
    "# passerelle: start\n"
    + _HELPERS
    + r"""
$vm = @(Find-PasserelleVM $VmName)[0]
if (-not $vm) { throw "no VM named '$VmName'" }
if ($vm.State -ne 'Running') { Start-VM -VM $vm }
[ordered]@{ name = $vm.Name; state = [string](Get-VM -Id $vm.Id).State }
"""
)

ADDRESSES = (
    "# passerelle: addresses\n"
    + _HELPERS
    + r"""
$vm = @(Find-PasserelleVM $VmName)[0]
if (-not $vm) { throw "no VM named '$VmName'" }
$addresses = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { $_.IPAddresses })
[ordered]@{ name = $vm.Name; addresses = $addresses }
"""
)
