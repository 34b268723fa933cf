"""Maps the design card's top-level folders into one ``passerelle.*`` namespace."""

from setuptools import find_packages, setup

FOLDERS = {
    "passerelle": "passerelle",
    "passerelle.engine": "engine",
    "passerelle.firstboot": "firstboot",
    "passerelle.image": "image",
    "passerelle.provisioning": "provisioning",
}

package_dir: dict[str, str] = {}
packages: list[str] = []
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(package_dir=package_dir, packages=packages, include_package_data=True)
