package io.edgeseal;

/** The package carries no publisher signature and the caller did not allow unsigned packages. */
public final class UnsignedPackageException extends InvalidPackageException {
    private static final long serialVersionUID = 1L;

    UnsignedPackageException() {
        super("sealed package is not signed; give trusted publisher keys, or call allowUnsigned(true) "
                + "if you really mean to load unsigned models");
    }

    @Override
    public String pythonName() {
        return "UnsignedPackage";
    }
}
