# One sealing boot of the assembled disk: the guest runs passerelle-seal.target (see
# files/systemd/), records what booted, resets the per-machine state and powers itself off.
# There is no communicator: nothing logs in, so no build credential ends up in the image.

source "qemu" "appliance" {
  iso_url          = var.source_disk
  iso_checksum     = var.source_disk_checksum
  disk_image       = true
  use_backing_file = false
  format           = "raw"
  disk_size        = "${var.disk_size_mib}M"
  disk_interface   = "virtio-scsi"
  net_device       = "vmxnet3"
  accelerator      = "tcg"
  machine_type     = "pc"
  cpus             = var.cpus
  memory           = var.memory_mib
  communicator     = "none"
  headless         = var.headless
  vnc_bind_address = "127.0.0.1"
  output_directory = var.output_directory
  vm_name          = "passerelle-${var.version}.raw"
  shutdown_timeout = var.seal_timeout
  # Replaces Packer's default user network, whose host forward listens on every interface:
  # the guest sees a private 192.168.1.0/24 and can reach nothing outside the build host.
  qemuargs = [
    ["-netdev", "user,id=user.0,net=192.168.1.0/24,host=192.168.1.2,restrict=on"],
    ["-serial", "file:${var.output_directory}.serial.log"],
  ]
}

build {
  sources = ["source.qemu.appliance"]
}
