"""Appliance image build: root filesystem, disk, Packer sealing boot, OVA/VHDX, boot test."""
