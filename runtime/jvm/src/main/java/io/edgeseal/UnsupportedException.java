package io.edgeseal;

/** A valid request that this platform cannot carry out (e.g. a JCA algorithm missing on an old Android). */
public final class UnsupportedException extends EdgesealException {
    private static final long serialVersionUID = 1L;

    UnsupportedException(String message) {
        super(message);
    }

    UnsupportedException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public String pythonName() {
        return "UnsupportedError";
    }
}
