# Inputs of the appliance image. `passerelle image build` reads this file, validates the values
# it passes (see passerelle.image.variables) and hands Packer only the ones the build block uses.

variable "version" {
  type        = string
  description = "Appliance version: names the artifacts passerelle-<version>.{ova,vhdx,raw}."
}

variable "source_disk" {
  type        = string
  description = "The GPT raw disk assembled by the wrapper (root filesystem, ESP, boot loaders)."
}

variable "source_disk_checksum" {
  type        = string
  default     = "none"
  description = "Packer checksum of source_disk, e.g. sha256:<hex>."
}

variable "output_directory" {
  type        = string
  description = "Where Packer writes the sealed disk; must not exist yet."
}

variable "disk_size_mib" {
  type        = number
  default     = 4096
  description = "Virtual disk size in MiB (the raw disk is sparse; the OVA stores only data)."
}

variable "esp_size_mib" {
  type        = number
  default     = 128
  description = "EFI system partition size in MiB (holds boot loaders, kernel and initrd)."
}

variable "cpus" {
  type        = number
  default     = 2
  description = "vCPUs of the build VM and of the exported virtual hardware."
}

variable "memory_mib" {
  type        = number
  default     = 2048
  description = "Memory in MiB of the build VM and of the exported virtual hardware."
}

variable "suite" {
  type        = string
  default     = "bookworm"
  description = "Debian suite of the root filesystem."
}

variable "mirrors" {
  type = list(string)
  default = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
  ]
  description = "APT sources lines for mmdebstrap."
}

variable "packages" {
  type = list(string)
  default = [
    "linux-image-cloud-amd64",
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "initramfs-tools",
    "kmod",
    "iproute2",
    "ca-certificates",
    "openssh-server",
    "python3",
    "python3-venv",
    "keepalived",
    "open-vm-tools",
    "hyperv-daemons",
  ]
  description = "Debian packages of the root filesystem (mmdebstrap --include)."
}

variable "kernel_cmdline" {
  type        = string
  default     = "console=ttyS0,115200n8 console=tty0 net.ifnames=1"
  description = "Kernel command line after root=; the last console= is /dev/console."
}

variable "headless" {
  type        = bool
  default     = true
  description = "Run the build VM without a display window."
}

variable "seal_timeout" {
  type        = string
  default     = "15m"
  description = "How long Packer waits for the sealing boot to power the VM off."
}

variable "extra_python_requirements" {
  type        = list(string)
  default     = []
  description = "Requirements installed into /opt/passerelle besides the project's dependencies."
}
