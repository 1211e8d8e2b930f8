package io.edgeseal;

/** The package is authentic but the caller's policy refuses it. */
public class PolicyException extends EdgesealException {
    private static final long serialVersionUID = 1L;

    PolicyException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "PolicyError";
    }
}
