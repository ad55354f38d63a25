export { defineFormat, formatLimits, type FloatFormat, type FormatEncoding, type FormatLimits, type SpecialValues } from './format.ts';
export { NAMED_FORMATS, parseFormat } from './registry.ts';
export { quantise, type OverflowPolicy, type QuantiseOptions, type Rounding } from './quantise.ts';
export { decodeCode, encodeValue } from './codes.ts';
export { formatTable, renderFormatTable, type FormatTableRow } from './table.ts';
export { formatValueText, parseValueText, valuesToJson } from './values.ts';
