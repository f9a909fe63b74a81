import { useEffect, useRef } from "react";
import * as d3 from "d3";

type AnyScale = d3.AxisScale<d3.NumberValue> | d3.AxisScale<string>;

interface AxisProps {
  scale: AnyScale;
  orient: "bottom" | "left";
  transform?: string;
  ticks?: number;
  format?: (v: d3.NumberValue | string) => string;
}

/** An SVG axis: React owns the <g>, d3 fills it in an effect (house rule 9). */
export function Axis({ scale, orient, transform, ticks = 5, format }: AxisProps) {
  const ref = useRef<SVGGElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const make = orient === "bottom" ? d3.axisBottom : d3.axisLeft;
    const axis = make(scale as d3.AxisScale<d3.NumberValue>).ticks(ticks);
    if (format) axis.tickFormat(format as (v: d3.NumberValue) => string);
    const g = d3.select(ref.current);
    g.call(axis);
    return () => {
      g.selectAll("*").remove();
    };
  }, [scale, orient, ticks, format]);
  return <g ref={ref} transform={transform} className={`axis axis-${orient}`} />;
}
