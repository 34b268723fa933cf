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

# Data that the engine reads at run time: template data files and the licence public key.
PACKAGE_DATA = {
    # The compiled request path, when `python -m passerelle.compile_hot_path` has built it.
    "passerelle.engine": ["_compiled/*"],
    # The source of a C module in that build: the engine checks the build against it.
    "passerelle.engine.runtime": ["*.c"],
    "passerelle.engine.manage.templates": ["data/*.yaml"],
    "passerelle.engine.manage.licence": ["vendor_public_key.pem"],
}

setup(package_dir=package_dir, packages=packages, package_data=PACKAGE_DATA)
