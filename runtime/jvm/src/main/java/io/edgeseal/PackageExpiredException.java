package io.edgeseal;

/** The package is past the expiry time its publisher sealed into it. */
public final class PackageExpiredException extends PolicyException {
    private static final long serialVersionUID = 1L;

    PackageExpiredException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "PackageExpired";
    }
}
