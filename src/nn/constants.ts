/**
 * Scale constants of element-wise nonlinearities: output scale = 1/std(f(X)) and gradient scale =
 * 1/std(f'(X)·G) for X, G ~ N(0, 1) independent (unit-scaling-ops.md §3.1). They are computed here
 * by quadrature rather than copied, and the tests compare them with the values the paper's
 * notebook measured (gelu 1.701/1.481, tanh 1.593/1.468, sigmoid 4.802/4.722, relu 1.713/1.414).
 */
export type Nonlinearity = 'gelu' | 'relu' | 'tanh' | 'sigmoid';

export interface NonlinearityScales {
  readonly output: number;
  readonly grad: number;
}

/** erfc with fractional error below 1.2e-7 (Chebyshev fit, Numerical Recipes `erfcc`). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

const normalCdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
const normalPdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

const FUNCTIONS: Record<Nonlinearity, { f: (x: number) => number; df: (x: number) => number }> = {
  gelu: { f: (x) => x * normalCdf(x), df: (x) => normalCdf(x) + x * normalPdf(x) },
  relu: { f: (x) => Math.max(0, x), df: (x) => (x > 0 ? 1 : 0) },
  tanh: { f: Math.tanh, df: (x) => 1 - Math.tanh(x) ** 2 },
  sigmoid: { f: sigmoid, df: (x) => sigmoid(x) * (1 - sigmoid(x)) },
};

/**
 * E[g(X)] for X ~ N(0,1): composite Simpson rule on [-12, 0] and [0, 12] separately (the tails
 * beyond are < 1e-30), each half evaluated at 0 from its own side so that ReLU's step is exact.
 */
function gaussianExpectation(g: (x: number) => number): number {
  const intervals = 12000;
  const h = 12 / intervals;
  let total = 0;
  for (const side of [-1, 1]) {
    for (let i = 0; i <= intervals; i++) {
      const x = i === 0 ? side * Number.MIN_VALUE : side * i * h;
      const weight = i === 0 || i === intervals ? 1 : i % 2 === 1 ? 4 : 2;
      total += weight * g(x) * normalPdf(x);
    }
  }
  return (total * h) / 3;
}

function measure(kind: Nonlinearity): NonlinearityScales {
  const { f, df } = FUNCTIONS[kind];
  const mean = gaussianExpectation(f);
  const variance = gaussianExpectation((x) => (f(x) - mean) ** 2);
  const gradSquare = gaussianExpectation((x) => df(x) ** 2);
  return { output: 1 / Math.sqrt(variance), grad: 1 / Math.sqrt(gradSquare) };
}

/** 1/std of each nonlinearity's output and gradient for unit-Gaussian inputs (computed once). */
export const MEASURED_SCALES: Readonly<Record<Nonlinearity, NonlinearityScales>> = {
  gelu: measure('gelu'),
  relu: measure('relu'),
  tanh: measure('tanh'),
  sigmoid: measure('sigmoid'),
};

/** The 2023 library's own GELU constants (US@084d291 `gelu`: output 1/0.588, gradient 1/0.675). */
export const LIBRARY_GELU_SCALES: NonlinearityScales = { output: 1 / 0.588, grad: 1 / 0.675 };

/** u-μP's L(α, lower, upper) = lower^(1−α)·upper^α (US@main core/functional.py). */
export function logInterpolate(alpha: number, lower: number, upper: number): number {
  return lower ** (1 - alpha) * upper ** alpha;
}

/** ReLU's constants in closed form: std(relu(X)) = √(1/2 − 1/(2π)), std(relu'(X)·G) = √(1/2). */
export const RELU_EXACT_SCALES: NonlinearityScales = { output: Math.sqrt(2 / (1 - 1 / Math.PI)), grad: Math.SQRT2 };

/** The 2023 library's softmax constants (US@084d291 `softmax`): output n/1.31, gradient n/1.65. */
export const LIBRARY_SOFTMAX_DIVISORS = { output: 1.31, grad: 1.65 } as const;
