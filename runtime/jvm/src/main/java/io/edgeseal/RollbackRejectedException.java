package io.edgeseal;

/** The model version is below the minimum version the caller accepts. */
public final class RollbackRejectedException extends PolicyException {
    private static final long serialVersionUID = 1L;

    RollbackRejectedException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "RollbackRejected";
    }
}
