"""Deployment on Hyper-V hosts: generated PowerShell run over WinRM (pywinrm, NTLM)."""
