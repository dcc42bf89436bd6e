// Exception flags raised by the instruction being executed; executeFp clears and publishes them.
export const fpState = { flags: 0 };

export const RM_RNE = 0;
export const RM_RTZ = 1;
export const RM_RDN = 2;
export const RM_RUP = 3;
export const RM_RMM = 4;
